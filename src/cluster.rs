//! Cluster sweeps (SPEC §6): the cluster-bus calls into the server, and the two roles a node
//! plays in a sweep that spans the cluster.
//!
//! - The **coordinator** is the primary that received `SWEEP.CLEAR`. It asks every slot-owning
//!   primary to pre-check the sweep (`Prepare` → `Ready`), then starts every share (`Start`),
//!   runs its own share as a local job, collects heartbeats and final counts, watches the
//!   topology for failovers and silent nodes, and answers the caller. Its bookkeeping is the
//!   pure `sweep_core::cluster::Coordination`.
//! - A **share** is the sweep of one primary's keys, run as an ordinary local job of that node
//!   (so it is sliced by the driver in `jobs.rs` and visible in its `SWEEP.STATUS`). It reports
//!   to the coordinator every [`HEARTBEAT`] and once more at its end, and finishes on its own if
//!   the coordinator goes away.
//!
//! The bus is best effort (shared/CLUSTER-FACTS.md): no message is trusted before its magic,
//! version and request id are checked, the receiver only records what arrived, and a module
//! timer (main thread, a context with the module) does the work.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_uchar, c_void, CStr};
use std::mem::ManuallyDrop;
use std::ptr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use redis_module::raw;
use sweep_core::args::{printable, ClearArgs};
use sweep_core::cluster::{
    pattern_slot, patterns_slot, Body, Coordination, DecodeError, Message, Precheck, ShareEnd,
    ShareState, MESSAGE_TYPE, NODE_ID_LEN,
};
use sweep_core::error::SweepError;
use sweep_core::sweep::Counts;

use crate::config;
use crate::jobs;
use crate::server::{api, Api, Blocked, Reply, Value};

type Ctx = *mut raw::RedisModuleCtx;
type CallReply = *mut raw::RedisModuleCallReply;

/// How often a share reports its counts to its coordinator.
const HEARTBEAT: Duration = Duration::from_millis(250);
/// How often the cluster timer runs while anything is in flight.
const PERIOD_MS: i64 = 50;
/// How many times a share repeats its final report (a lost report would look like silence).
const FINAL_REPEATS: u8 = 3;
/// How long a share that ended is remembered, so duplicated requests are recognised.
const REMEMBER: Duration = Duration::from_secs(60);

/// The server's cluster API, resolved at load time; `None` where the server lacks part of it.
struct Fns {
    send: unsafe extern "C" fn(Ctx, *const c_char, u8, *const c_char, u32) -> c_int,
    node_info: unsafe extern "C" fn(
        Ctx,
        *const c_char,
        *mut c_char,
        *mut c_char,
        *mut c_int,
        *mut c_int,
    ) -> c_int,
    nodes_list: unsafe extern "C" fn(Ctx, *mut usize) -> *mut *mut c_char,
    free_nodes_list: unsafe extern "C" fn(*mut *mut c_char),
    my_id: unsafe extern "C" fn() -> *const c_char,
    context_flags: unsafe extern "C" fn(Ctx) -> c_int,
    call: unsafe extern "C" fn(Ctx, *const c_char, *const c_char, ...) -> CallReply,
    reply_type: unsafe extern "C" fn(CallReply) -> c_int,
    reply_length: unsafe extern "C" fn(CallReply) -> usize,
    reply_element: unsafe extern "C" fn(CallReply, usize) -> CallReply,
    reply_string: unsafe extern "C" fn(CallReply, *mut usize) -> *const c_char,
    reply_integer: unsafe extern "C" fn(CallReply) -> std::os::raw::c_longlong,
    free_reply: unsafe extern "C" fn(CallReply),
    create_timer: unsafe extern "C" fn(
        Ctx,
        raw::mstime_t,
        raw::RedisModuleTimerProc,
        *mut c_void,
    ) -> raw::RedisModuleTimerID,
    stop_timer: unsafe extern "C" fn(Ctx, raw::RedisModuleTimerID, *mut *mut c_void) -> c_int,
    log: unsafe extern "C" fn(Ctx, *const c_char, *const c_char, ...),
}

static FNS: OnceLock<Fns> = OnceLock::new();

fn fns() -> Option<&'static Fns> {
    FNS.get()
}

/// Resolves the cluster API and registers the message receiver. A server without part of the
/// API still loads the module; a cluster sweep then says what is missing.
pub fn init(ctx: Ctx) -> Result<(), String> {
    // SAFETY: the server filled these pointers before `RedisModule_OnLoad`; read-only after.
    let resolved = unsafe {
        (|| {
            Some(Fns {
                send: raw::RedisModule_SendClusterMessage?,
                node_info: raw::RedisModule_GetClusterNodeInfo?,
                nodes_list: raw::RedisModule_GetClusterNodesList?,
                free_nodes_list: raw::RedisModule_FreeClusterNodesList?,
                my_id: raw::RedisModule_GetMyClusterID?,
                context_flags: raw::RedisModule_GetContextFlags?,
                call: raw::RedisModule_Call?,
                reply_type: raw::RedisModule_CallReplyType?,
                reply_length: raw::RedisModule_CallReplyLength?,
                reply_element: raw::RedisModule_CallReplyArrayElement?,
                reply_string: raw::RedisModule_CallReplyStringPtr?,
                reply_integer: raw::RedisModule_CallReplyInteger?,
                free_reply: raw::RedisModule_FreeCallReply?,
                create_timer: raw::RedisModule_CreateTimer?,
                stop_timer: raw::RedisModule_StopTimer?,
                log: raw::RedisModule_Log?,
            })
        })()
    };
    // SAFETY: as above.
    let register = unsafe { raw::RedisModule_RegisterClusterMessageReceiver };
    let (Some(resolved), Some(register)) = (resolved, register) else {
        return Ok(());
    };
    let _ = FNS.set(resolved);
    // SAFETY: `ctx` is the load context; the callback never unwinds. The type is never 255.
    unsafe { register(ctx, MESSAGE_TYPE, Some(on_message)) };
    declare_atomic_slot_migration(ctx);
    STATE.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            *s = State::default();
        }
    });
    Ok(())
}

/// Valkey 9 refuses `CLUSTER MIGRATESLOTS` for the whole cluster while a module is loaded that
/// has not declared it copes with atomic slot migration. A sweep does: keys that arrive in an
/// importing slot are swept if they match, keys that leave are not touched again.
fn declare_atomic_slot_migration(ctx: Ctx) {
    /// `VALKEYMODULE_OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION` (Valkey 9.0).
    const HANDLE_ATOMIC_SLOT_MIGRATION: c_int = 1 << 5;
    // SAFETY: as in `init`.
    let Some(set_options) = (unsafe { raw::RedisModule_SetModuleOptions }) else {
        return;
    };
    let Some(f) = fns() else { return };
    // Only Valkey gives this bit that meaning; Redis has its own options.
    let info = call_text(f, ctx, c"INFO", c"server").unwrap_or_default();
    if info.contains("server_name:valkey") {
        // SAFETY: `ctx` is the load context, where module options are set.
        unsafe { set_options(ctx, HANDLE_ATOMIC_SLOT_MIGRATION) };
    }
}

/// `INFO`-style text reply of `command arg`, through `RedisModule_Call`.
fn call_text(f: &Fns, ctx: Ctx, command: &CStr, arg: &CStr) -> Option<String> {
    // SAFETY: "c" takes one NUL-terminated string; the reply is freed below.
    let reply = unsafe { (f.call)(ctx, command.as_ptr(), c"c".as_ptr(), arg.as_ptr()) };
    if reply.is_null() {
        return None;
    }
    // SAFETY: `reply` is live until freed.
    let text = unsafe { reply_bytes(f, reply) }.map(|b| String::from_utf8_lossy(&b).into_owned());
    // SAFETY: freed once.
    unsafe { (f.free_reply)(reply) };
    text
}

/// # Safety
/// `reply` must be a live call reply or NULL.
unsafe fn reply_bytes(f: &Fns, reply: CallReply) -> Option<Vec<u8>> {
    if reply.is_null() {
        return None;
    }
    let mut len = 0usize;
    let p = (f.reply_string)(reply, &mut len);
    if p.is_null() {
        return None;
    }
    Some(std::slice::from_raw_parts(p.cast::<u8>(), len).to_vec())
}

/// A node id as the server hands it out: 40 bytes, not NUL-terminated on Redis.
///
/// # Safety
/// `p` must be NULL or point to at least 40 readable bytes.
unsafe fn id_from_ptr(p: *const c_char) -> Option<String> {
    if p.is_null() {
        return None;
    }
    let bytes = std::slice::from_raw_parts(p.cast::<u8>(), NODE_ID_LEN);
    if !bytes.iter().all(u8::is_ascii_alphanumeric) {
        return None;
    }
    String::from_utf8(bytes.to_vec()).ok()
}

/// A node id copied into a NUL-terminated buffer: the server finds a target with `strlen`.
fn c_id(id: &str) -> [u8; NODE_ID_LEN + 1] {
    let mut buf = [0u8; NODE_ID_LEN + 1];
    for (dst, src) in buf.iter_mut().zip(id.bytes().take(NODE_ID_LEN)) {
        *dst = src;
    }
    buf
}

/// What the cluster says about one node now.
struct NodeInfo {
    addr: String,
    /// Its primary's id, for a replica.
    primary: Option<String>,
    flags: u32,
}

impl NodeInfo {
    fn is_primary(&self) -> bool {
        self.flags & raw::REDISMODULE_NODE_MASTER != 0
    }

    fn is_replica(&self) -> bool {
        self.flags & raw::REDISMODULE_NODE_SLAVE != 0
    }

    fn failed(&self) -> bool {
        self.flags & raw::REDISMODULE_NODE_FAIL != 0
    }
}

fn node_info(f: &Fns, ctx: Ctx, id: &str) -> Option<NodeInfo> {
    let id_buf = c_id(id);
    // The server copies up to 46 bytes of address and 40 of primary id, without a NUL.
    let mut ip = [0u8; 64];
    let mut primary = [0u8; NODE_ID_LEN + 1];
    let mut port: c_int = 0;
    let mut flags: c_int = 0;
    // SAFETY: every buffer is larger than what the server writes; the id is NUL-terminated.
    let status = unsafe {
        (f.node_info)(
            ctx,
            id_buf.as_ptr().cast(),
            ip.as_mut_ptr().cast(),
            primary.as_mut_ptr().cast(),
            &mut port,
            &mut flags,
        )
    };
    if status != raw::REDISMODULE_OK as c_int {
        return None;
    }
    let ip_len = ip.iter().position(|&b| b == 0).unwrap_or(ip.len());
    let ip = String::from_utf8_lossy(ip.get(..ip_len).unwrap_or_default()).into_owned();
    // SAFETY: `primary` has 41 readable bytes.
    let primary = unsafe { id_from_ptr(primary.as_ptr().cast()) };
    Some(NodeInfo {
        addr: format!("{ip}:{port}"),
        primary,
        flags: u32::try_from(flags).unwrap_or(0),
    })
}

fn my_id(f: &Fns) -> Option<String> {
    // SAFETY: the server returns its own 40-byte id (no NUL on Redis), or NULL outside cluster.
    unsafe { id_from_ptr((f.my_id)()) }
}

/// Every node id the cluster knows (primaries, replicas, failed nodes).
fn all_nodes(f: &Fns, ctx: Ctx) -> Vec<String> {
    let mut n = 0usize;
    // SAFETY: `n` is a live out-parameter; the list is freed below.
    let list = unsafe { (f.nodes_list)(ctx, &mut n) };
    if list.is_null() {
        return Vec::new();
    }
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: the list holds `n` pointers to 40-byte ids.
        if let Some(id) = unsafe { id_from_ptr(*list.add(i)) } {
            ids.push(id);
        }
    }
    // SAFETY: the list came from `GetClusterNodesList`; freed once.
    unsafe { (f.free_nodes_list)(list) };
    ids
}

/// `CLUSTER SLOTS`: `(first slot, last slot, primary id)` for every served range.
fn slot_ranges(f: &Fns, ctx: Ctx) -> Vec<(i64, i64, String)> {
    // SAFETY: "c" takes one NUL-terminated string; the reply is freed below.
    let reply = unsafe { (f.call)(ctx, c"CLUSTER".as_ptr(), c"c".as_ptr(), c"SLOTS".as_ptr()) };
    if reply.is_null() {
        return Vec::new();
    }
    let mut ranges = Vec::new();
    // SAFETY: `reply` and its elements live until it is freed; each access is checked for NULL
    // and bounded by the length the server reports.
    unsafe {
        if (f.reply_type)(reply) == raw::REDISMODULE_REPLY_ARRAY as c_int {
            for i in 0..(f.reply_length)(reply) {
                let range = (f.reply_element)(reply, i);
                if range.is_null() || (f.reply_length)(range) < 3 {
                    continue;
                }
                let first = (f.reply_element)(range, 0);
                let last = (f.reply_element)(range, 1);
                let node = (f.reply_element)(range, 2);
                if first.is_null() || last.is_null() || node.is_null() {
                    continue;
                }
                if (f.reply_length)(node) < 3 {
                    continue;
                }
                let id = reply_bytes(f, (f.reply_element)(node, 2))
                    .and_then(|b| String::from_utf8(b).ok());
                if let Some(id) = id.filter(|id| id.len() == NODE_ID_LEN) {
                    ranges.push(((f.reply_integer)(first), (f.reply_integer)(last), id));
                }
            }
        }
        (f.free_reply)(reply);
    }
    ranges
}

fn context_flags(f: &Fns, ctx: Ctx) -> u32 {
    // SAFETY: `ctx` is a live context.
    u32::try_from(unsafe { (f.context_flags)(ctx) }).unwrap_or(0)
}

fn in_cluster(f: &Fns, ctx: Ctx) -> bool {
    context_flags(f, ctx) & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0
}

fn is_primary(f: &Fns, ctx: Ctx) -> bool {
    context_flags(f, ctx) & raw::REDISMODULE_CTX_FLAGS_MASTER != 0
}

fn send(f: &Fns, ctx: Ctx, target: &str, message: &Message) -> bool {
    let bytes = message.encode();
    let Ok(len) = u32::try_from(bytes.len()) else {
        return false;
    };
    let target = c_id(target);
    // SAFETY: a NUL-terminated target id, a buffer of `len` bytes; main thread, a context
    // with the module (a command, a timer or the receiver).
    let status = unsafe {
        (f.send)(
            ctx,
            target.as_ptr().cast(),
            MESSAGE_TYPE,
            bytes.as_ptr().cast(),
            len,
        )
    };
    status == raw::REDISMODULE_OK as c_int
}

fn log(f: &Fns, ctx: Ctx, level: &[u8], line: &str) {
    let Ok(line) = std::ffi::CString::new(line.replace('\0', " ")) else {
        return;
    };
    // SAFETY: `%s` with a NUL-terminated string; the level is a NUL-terminated constant.
    unsafe { (f.log)(ctx, level.as_ptr().cast(), c"%s".as_ptr(), line.as_ptr()) };
}

/// The receiver: runs inside the cluster-bus read handler. It only decodes and records; the
/// timer does the work.
extern "C" fn on_message(
    ctx: Ctx,
    sender: *const c_char,
    kind: u8,
    payload: *const c_uchar,
    len: u32,
) {
    let Some(f) = fns() else { return };
    if kind != MESSAGE_TYPE {
        return;
    }
    // SAFETY: the server passes the sender's 40-byte id.
    let Some(sender) = (unsafe { id_from_ptr(sender) }) else {
        return;
    };
    let bytes = if payload.is_null() {
        &[][..]
    } else {
        // SAFETY: the server passes `len` bytes of payload, live for the call.
        unsafe { std::slice::from_raw_parts(payload, usize::try_from(len).unwrap_or(0)) }
    };
    match Message::decode(bytes) {
        Ok(message) => {
            INBOX.with(|i| {
                if let Ok(mut i) = i.try_borrow_mut() {
                    i.push((sender, message));
                }
            });
            wake_now(f, ctx);
        }
        Err(e) => {
            IGNORED.with(|n| n.set(n.get() + 1));
            log(
                f,
                ctx,
                raw::REDISMODULE_LOGLEVEL_VERBOSE,
                &format!("sweep: ignored a cluster message from {sender}: {e}"),
            );
            if let DecodeError::Version {
                request: Some(request),
                ..
            } = e
            {
                // Say so, in our version: the coordinator names this node in its refusal.
                let reply = Message::new(
                    request,
                    Body::Ready {
                        ok: false,
                        reason: b"speaks another version of the sweep protocol".to_vec(),
                    },
                );
                send(f, ctx, &sender, &reply);
            }
        }
    }
}

/// A local job that ended: `(id, state, counts, elapsed_ms, reason)`.
type JobEnd = (u64, &'static str, Counts, u64, String);

/// Counters for `INFO sweep`.
#[derive(Default, Clone, Copy)]
struct Counters {
    shares_requested: u64,
    shares_served: u64,
    shares_timed_out: u64,
}

/// One cluster sweep this node coordinates.
struct Coord {
    id: u64,
    request: u64,
    pattern: Vec<u8>,
    or: Vec<Vec<u8>>,
    except: Vec<Vec<u8>>,
    words: Vec<Vec<u8>>,
    db: i32,
    user: Option<Vec<u8>>,
    my_id: String,
    my_addr: String,
    book: Coordination,
    client: Option<Blocked>,
    local_job: Option<u64>,
    /// `(primary, its replicas)` when the sweep started: who may take over a share.
    replicas: Vec<(String, Vec<String>)>,
    /// Set when the sweep has ended for its caller: `(state, reason)`.
    ending: Option<(&'static str, Option<String>)>,
    ended_at: Option<Instant>,
    elapsed_ms: Option<u64>,
}

/// Where a share this node runs for another coordinator stands.
enum Phase {
    /// Pre-checked; waiting for `Start`.
    Prepared {
        args: Box<ClearArgs>,
        db: i32,
        user: Option<Vec<u8>>,
        until: Instant,
    },
    Running {
        job: u64,
    },
    /// Ended; the final report is repeated a few times, then the record kept for duplicates.
    Ended {
        report: Message,
        repeats: u8,
        until: Instant,
    },
}

struct Served {
    coordinator: String,
    coordinator_addr: String,
    request: u64,
    phase: Phase,
    last_sent: Instant,
}

#[derive(Default)]
struct State {
    coords: Vec<Coord>,
    /// Finished cluster sweeps kept for `SWEEP.STATUS`, newest last.
    history: VecDeque<Coord>,
    served: Vec<Served>,
    timer: Option<(raw::RedisModuleTimerID, Instant)>,
    counters: Counters,
    seq: u64,
}

// Never dropped: nothing of the module may run at process exit (as in `jobs.rs`).
thread_local! {
    static STATE: ManuallyDrop<RefCell<State>> = ManuallyDrop::new(RefCell::new(State::default()));
    static INBOX: ManuallyDrop<RefCell<Vec<(String, Message)>>> =
        const { ManuallyDrop::new(RefCell::new(Vec::new())) };
    /// Jobs that ended: `(id, state, counts, elapsed_ms, reason)`.
    static ENDED: ManuallyDrop<RefCell<Vec<JobEnd>>> =
        const { ManuallyDrop::new(RefCell::new(Vec::new())) };
    static GONE: ManuallyDrop<RefCell<Vec<usize>>> =
        const { ManuallyDrop::new(RefCell::new(Vec::new())) };
    static IGNORED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A job of this node ended (called by `jobs.rs` while its registry is in use: only record,
/// and run the timer soon if it is one of ours).
pub fn job_ended(
    ctx: Ctx,
    id: u64,
    state: &'static str,
    counts: Counts,
    elapsed_ms: u64,
    reason: String,
) {
    let Some(f) = fns() else { return };
    let ours = STATE.with(|s| match s.try_borrow() {
        Ok(s) => {
            s.coords.iter().any(|c| c.local_job == Some(id))
                || s.served
                    .iter()
                    .any(|sv| matches!(sv.phase, Phase::Running { job } if job == id))
        }
        // Inside the timer (a cancel): it reads the queue on its next turn.
        Err(_) => true,
    });
    if !ours {
        return;
    }
    ENDED.with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.push((id, state, counts, elapsed_ms, reason));
        }
    });
    wake_now(f, ctx);
    // Jobs end in the event loop's before-sleep hook, after the server has computed how long
    // it will sleep: a timer armed now would wait for that sleep (up to the next periodic
    // tick, measured at 50 ms per cluster sweep). A one-shot event wakes the loop at once.
    // SAFETY: reading a pointer the server filled at load time.
    if let Some(one_shot) = unsafe { raw::RedisModule_EventLoopAddOneShot } {
        // SAFETY: main thread; the callback does nothing and never unwinds.
        unsafe { one_shot(Some(wake_loop), ptr::null_mut()) };
    }
}

extern "C" fn wake_loop(_data: *mut c_void) {}

/// A blocked client went away (only record: the timer cancels its sweep).
pub fn client_disconnected(handle: usize) {
    GONE.with(|g| {
        if let Ok(mut g) = g.try_borrow_mut() {
            g.push(handle);
        }
    });
}

/// `INFO sweep` cluster counters.
pub fn info_fields() -> Vec<(&'static CStr, i64)> {
    let ignored = IGNORED.with(std::cell::Cell::get);
    STATE.with(|s| {
        let Ok(s) = s.try_borrow() else {
            return Vec::new();
        };
        let c = s.counters;
        let int = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        vec![
            (c"cluster_sweeps_running", int(s.coords.len() as u64)),
            (c"cluster_shares_requested", int(c.shares_requested)),
            (c"cluster_shares_served", int(c.shares_served)),
            (c"cluster_shares_timed_out", int(c.shares_timed_out)),
            (c"cluster_messages_ignored", int(ignored)),
        ]
    })
}

/// Refuses to unload while cluster sweeps run; otherwise stops the timer.
pub fn deinit(ctx: Ctx) -> Result<(), String> {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        if !s.coords.is_empty() {
            return Err(format!(
                "{} cluster sweep(s) still running: wait for them to end or SWEEP.CANCEL them",
                s.coords.len()
            ));
        }
        if let (Some(f), Some((id, _))) = (fns(), s.timer.take()) {
            // SAFETY: a timer of this module that has not fired.
            unsafe { (f.stop_timer)(ctx, id, ptr::null_mut()) };
        }
        // No message may reach a receiver in an unloaded library.
        // SAFETY: reading a pointer the server filled at load time; a NULL callback
        // unregisters the type.
        if let Some(register) = unsafe { raw::RedisModule_RegisterClusterMessageReceiver } {
            // SAFETY: `ctx` is the unload context.
            unsafe { register(ctx, MESSAGE_TYPE, None) };
        }
        *s = State::default();
        // Replaced, not cleared: their buffers must go back before the library may unload.
        INBOX.with(|q| {
            if let Ok(mut q) = q.try_borrow_mut() {
                *q = Vec::new();
            }
        });
        ENDED.with(|q| {
            if let Ok(mut q) = q.try_borrow_mut() {
                *q = Vec::new();
            }
        });
        GONE.with(|q| {
            if let Ok(mut q) = q.try_borrow_mut() {
                *q = Vec::new();
            }
        });
        Ok(())
    })
}

fn arm(f: &Fns, ctx: Ctx, s: &mut State, ms: i64) {
    let due = Instant::now() + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    if let Some((id, at)) = s.timer {
        if at <= due {
            return;
        }
        // SAFETY: a timer of this module that has not fired (fired ones are cleared).
        unsafe { (f.stop_timer)(ctx, id, ptr::null_mut()) };
    }
    // SAFETY: `ctx` has the module; the callback never unwinds.
    let id = unsafe { (f.create_timer)(ctx, ms, Some(on_timer), ptr::null_mut()) };
    s.timer = Some((id, due));
}

/// Something arrived: run the timer at once.
fn wake_now(f: &Fns, ctx: Ctx) {
    STATE.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            arm(f, ctx, &mut s, 0);
        }
    });
}

extern "C" fn on_timer(ctx: Ctx, _data: *mut c_void) {
    let Some(f) = fns() else { return };
    STATE.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.timer = None;
        }
    });
    tick(f, ctx);
    STATE.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            if !s.coords.is_empty() || !s.served.is_empty() {
                arm(f, ctx, &mut s, PERIOD_MS);
            }
        }
    });
}

fn unavailable(why: impl Into<String>) -> SweepError {
    SweepError::Unavailable(why.into())
}

/// `SWEEP.CLEAR` in cluster mode. `Ok(None)` outside cluster mode (the caller runs a plain
/// local sweep); otherwise the sweep is coordinated from here.
pub fn clear(
    ctx: Ctx,
    words: &[&[u8]],
    args: &ClearArgs,
) -> Result<Option<jobs::Started>, SweepError> {
    let Some(api) = api() else {
        return Ok(None);
    };
    let Some(f) = fns() else {
        // No cluster API: only a plain sweep is possible, and only outside a cluster.
        // SAFETY: reading a pointer the server filled at load time.
        if let Some(flags) = unsafe { raw::RedisModule_GetContextFlags } {
            // SAFETY: `ctx` is the command's context.
            let flags = u32::try_from(unsafe { flags(ctx) }).unwrap_or(0);
            if flags & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0 && !args.local {
                return Err(unavailable(
                    "this server lacks the module cluster API: use LOCAL on each primary",
                ));
            }
        }
        return Ok(None);
    };
    if !in_cluster(f, ctx) {
        return Ok(None);
    }
    if !args.run_async && !api.can_block(ctx) {
        return Err(SweepError::CannotBlock);
    }
    let user = caller(api, ctx)?;
    let my_id = my_id(f).ok_or_else(|| unavailable("cannot tell this node's cluster id"))?;
    let my_addr = node_info(f, ctx, &my_id)
        .map(|i| i.addr)
        .unwrap_or_default();
    let ranges = slot_ranges(f, ctx);
    let targets: Vec<String> = if args.local {
        vec![my_id.clone()]
    } else if let Some(slot) = patterns_slot(args.take_patterns()) {
        let slot = i64::from(slot);
        let owner = ranges
            .iter()
            .find(|(first, last, _)| (*first..=*last).contains(&slot))
            .map(|(_, _, id)| id.clone())
            .ok_or_else(|| {
                unavailable(format!(
                    "the pattern's keys all live in slot {slot}, which no node serves \
                     (CLUSTER SLOTS)"
                ))
            })?;
        vec![owner]
    } else {
        let mut ids: Vec<String> = Vec::new();
        for (_, _, id) in &ranges {
            if !ids.contains(id) {
                ids.push(id.clone());
            }
        }
        if ids.is_empty() {
            return Err(unavailable(
                "no node serves any slot (CLUSTER SLOTS is empty)",
            ));
        }
        ids
    };
    let nodes: Vec<(String, String)> = targets
        .iter()
        .map(|id| {
            let addr = node_info(f, ctx, id)
                .map(|i| i.addr)
                .unwrap_or_else(|| id.clone());
            (id.clone(), addr)
        })
        .collect();
    let replicas = replicas_of(f, ctx, &targets);
    let timeout = Duration::from_millis(config::current().cluster_timeout_ms);
    let now = Instant::now();
    let mut book = Coordination::new(nodes, timeout, now);
    book.on_ready(&my_id, true, "", now);
    let client = if args.run_async {
        None
    } else {
        Some(
            api.block(ctx)
                .ok_or_else(|| unavailable("cannot block the client"))?,
        )
    };
    let id = jobs::reserve_id();
    let db = api.selected_db(ctx);
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.seq = s.seq.wrapping_add(1);
        let request = request_id(s.seq);
        let coord = Coord {
            id,
            request,
            pattern: args.pattern.clone(),
            or: args.or.clone(),
            except: args.except.clone(),
            words: words.iter().map(|w| w.to_vec()).collect(),
            db,
            user,
            my_id,
            my_addr,
            book,
            client,
            local_job: None,
            replicas,
            ending: None,
            ended_at: None,
            elapsed_ms: None,
        };
        for share in &coord.book.shares {
            if share.node != coord.my_id {
                s.counters.shares_requested += 1;
                send(f, ctx, &share.node, &prepare(&coord));
            }
        }
        s.coords.push(coord);
        arm(f, ctx, &mut s, 0);
    });
    Ok(Some(if args.run_async {
        jobs::Started::Async(id)
    } else {
        jobs::Started::Blocking
    }))
}

/// Whether a sweep of `pattern` on this node visits keys with `SCAN … MATCH` (a pattern pinned
/// to one slot, in cluster mode: from Redis 7.4 and Valkey 8 the server then visits only that
/// slot, instead of the whole keyspace the module scan API walks).
pub fn pinned(ctx: Ctx, pattern: &[u8]) -> bool {
    fns().is_some_and(|f| in_cluster(f, ctx)) && pattern_slot(pattern).is_some()
}

/// The caller's ACL user name (the same rule as a local sweep).
fn caller(api: &Api, ctx: Ctx) -> Result<Option<Vec<u8>>, SweepError> {
    if api.has_key_acl() {
        api.caller_name(ctx)
            .map(Some)
            .ok_or_else(|| unavailable("cannot tell which user runs the command"))
    } else if api.caller_has_all_keys(ctx) == Some(true) {
        Ok(None)
    } else {
        Err(unavailable(
            "this server cannot check key permissions one by one (Redis 7.0+ can): here \
             SWEEP.CLEAR needs a user that may access every key (allkeys)",
        ))
    }
}

fn replicas_of(f: &Fns, ctx: Ctx, primaries: &[String]) -> Vec<(String, Vec<String>)> {
    let mut out: Vec<(String, Vec<String>)> =
        primaries.iter().map(|p| (p.clone(), Vec::new())).collect();
    for id in all_nodes(f, ctx) {
        if let Some(primary) = node_info(f, ctx, &id).and_then(|i| i.primary) {
            if let Some((_, list)) = out.iter_mut().find(|(p, _)| *p == primary) {
                list.push(id);
            }
        }
    }
    out
}

/// A request id no other sweep of this or another coordinator is likely to share: the clock,
/// the process and a sequence number, mixed.
fn request_id(seq: u64) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut z = nanos ^ (u64::from(std::process::id()) << 32) ^ seq.wrapping_mul(0x9E37_79B9);
    // splitmix64's finaliser.
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn prepare(c: &Coord) -> Message {
    Message::new(
        c.request,
        Body::Prepare {
            coordinator: c.my_id.as_bytes().to_vec(),
            coordinator_addr: c.my_addr.as_bytes().to_vec(),
            db: c.db,
            user: c.user.clone(),
            words: c.words.clone(),
        },
    )
}

/// One turn of the cluster timer.
fn tick(f: &Fns, ctx: Ctx) {
    let now = Instant::now();
    let inbox = INBOX.with(|i| i.try_borrow_mut().map(|mut i| std::mem::take(&mut *i)));
    let ended = ENDED.with(|e| e.try_borrow_mut().map(|mut e| std::mem::take(&mut *e)));
    let gone = GONE.with(|g| g.try_borrow_mut().map(|mut g| std::mem::take(&mut *g)));
    STATE.with(|s| {
        let Ok(mut s) = s.try_borrow_mut() else {
            return;
        };
        let s = &mut *s;
        for (sender, message) in inbox.unwrap_or_default() {
            if !handle(f, ctx, s, &sender, message, now) {
                IGNORED.with(|n| n.set(n.get() + 1));
                log(
                    f,
                    ctx,
                    raw::REDISMODULE_LOGLEVEL_VERBOSE,
                    &format!("sweep: ignored a stale or duplicate cluster message from {sender}"),
                );
            }
        }
        for (job, state, counts, elapsed_ms, reason) in ended.unwrap_or_default() {
            job_end(f, ctx, s, job, state, counts, elapsed_ms, reason, now);
        }
        for handle in gone.unwrap_or_default() {
            for c in &mut s.coords {
                if c.client.as_ref().map(Blocked::handle) == Some(handle) {
                    cancel_coord(f, ctx, c, now);
                }
            }
        }
        serve(f, ctx, s, now);
        let mut i = 0;
        while i < s.coords.len() {
            if let Some(c) = s.coords.get_mut(i) {
                coordinate(f, ctx, c, &mut s.counters, now);
            }
            let closed = s
                .coords
                .get(i)
                .is_some_and(|c| c.ending.is_some() && c.book.is_finished());
            if closed {
                let c = s.coords.remove(i);
                s.history.push_back(c);
                let keep = usize::try_from(config::current().history).unwrap_or(usize::MAX);
                while s.history.len() > keep {
                    s.history.pop_front();
                }
            } else {
                i += 1;
            }
        }
    });
}

/// Applies one message. False when it was stale, duplicated or not for anything here.
fn handle(f: &Fns, ctx: Ctx, s: &mut State, sender: &str, m: Message, now: Instant) -> bool {
    let request = m.request;
    match m.body {
        Body::Prepare {
            coordinator_addr,
            db,
            user,
            words,
            ..
        } => {
            if let Some(sv) = s
                .served
                .iter()
                .find(|sv| sv.coordinator == sender && sv.request == request)
            {
                // A repeated request: answer again if still waiting, otherwise ignore.
                if matches!(sv.phase, Phase::Prepared { .. }) {
                    send(f, ctx, sender, &ready(request, Ok(())));
                    return true;
                }
                return false;
            }
            let coordinator_addr = String::from_utf8_lossy(&coordinator_addr).into_owned();
            let verdict = precheck(f, ctx, &words, user.as_deref());
            send(
                f,
                ctx,
                sender,
                &ready(request, verdict.as_ref().map(|_| ()).map_err(Clone::clone)),
            );
            if let Ok(args) = verdict {
                let timeout = Duration::from_millis(config::current().cluster_timeout_ms);
                s.served.push(Served {
                    coordinator: sender.to_string(),
                    coordinator_addr,
                    request,
                    phase: Phase::Prepared {
                        args: Box::new(args),
                        db,
                        user,
                        until: now + timeout.saturating_mul(2),
                    },
                    last_sent: now,
                });
            }
            true
        }
        Body::Start => {
            let Some(sv) = s
                .served
                .iter_mut()
                .find(|sv| sv.coordinator == sender && sv.request == request)
            else {
                return false;
            };
            let Phase::Prepared { args, db, user, .. } = &sv.phase else {
                return false;
            };
            let started = jobs::start_share(
                ctx,
                (**args).clone(),
                *db,
                user.clone(),
                sv.coordinator_addr.clone(),
            );
            s.counters.shares_served += 1;
            match started {
                Ok(job) => {
                    sv.phase = Phase::Running { job };
                    sv.last_sent = now;
                    let report = Message::new(
                        request,
                        Body::Progress {
                            counts: Counts::default(),
                            elapsed_ms: 0,
                        },
                    );
                    send(f, ctx, sender, &report);
                }
                Err(e) => {
                    let report = Message::new(
                        request,
                        Body::Final {
                            end: ShareEnd::Aborted,
                            counts: Counts::default(),
                            elapsed_ms: 0,
                            reason: e.to_string().trim_start_matches("ERR ").as_bytes().to_vec(),
                        },
                    );
                    send(f, ctx, sender, &report);
                    sv.phase = Phase::Ended {
                        report,
                        repeats: FINAL_REPEATS,
                        until: now + REMEMBER,
                    };
                    sv.last_sent = now;
                }
            }
            true
        }
        Body::Cancel => {
            let Some(index) = s
                .served
                .iter()
                .position(|sv| sv.coordinator == sender && sv.request == request)
            else {
                return false;
            };
            match s.served.get(index).map(|sv| &sv.phase) {
                Some(Phase::Prepared { .. }) => {
                    s.served.remove(index);
                    true
                }
                Some(Phase::Running { job }) => {
                    // Its end reaches `job_end`, which reports the final counts.
                    let _ = jobs::cancel(ctx, *job);
                    true
                }
                _ => false,
            }
        }
        Body::Ready { ok, reason } => {
            let Some(c) = open_coord(s, request) else {
                return false;
            };
            let reason = String::from_utf8_lossy(&reason).into_owned();
            let was_asked = c
                .book
                .shares
                .iter()
                .any(|sh| sh.node == sender && sh.state == ShareState::Asked);
            if !was_asked {
                return false;
            }
            if c.book.on_ready(sender, ok, &reason, now) {
                // A takeover node: start at once.
                send(f, ctx, sender, &Message::new(request, Body::Start));
            }
            true
        }
        Body::Progress { counts, .. } => match open_coord(s, request) {
            Some(c) => c.book.on_progress(sender, counts, now),
            None => false,
        },
        Body::Final {
            end,
            counts,
            reason,
            ..
        } => match open_coord(s, request) {
            Some(c) => {
                let reason = String::from_utf8_lossy(&reason).into_owned();
                let ok = c.book.on_final(sender, end, counts, &reason, now);
                if ok && end == ShareEnd::Handover {
                    try_take_over(f, ctx, c, sender, now);
                }
                ok
            }
            None => false,
        },
    }
}

fn open_coord(s: &mut State, request: u64) -> Option<&mut Coord> {
    s.coords.iter_mut().find(|c| c.request == request)
}

fn ready(request: u64, verdict: Result<(), String>) -> Message {
    let (ok, reason) = match verdict {
        Ok(()) => (true, Vec::new()),
        Err(why) => (false, why.into_bytes()),
    };
    Message::new(request, Body::Ready { ok, reason })
}

/// The pre-check of a share on this node: a primary, options that parse, a user that exists.
fn precheck(
    f: &Fns,
    ctx: Ctx,
    words: &[Vec<u8>],
    user: Option<&[u8]>,
) -> Result<ClearArgs, String> {
    let Some(api) = api() else {
        return Err("the module is not loaded".into());
    };
    if !is_primary(f, ctx) {
        return Err("not a primary".into());
    }
    let args = ClearArgs::parse(words).map_err(|e| e.to_string())?;
    match user {
        Some(name) if api.has_key_acl() && api.user(name).is_none() => {
            return Err(format!("no user '{}' here", printable(name)));
        }
        Some(_) if api.has_key_acl() => {}
        Some(_) => {
            return Err("this server cannot check key permissions one by one".into());
        }
        None if api.has_key_acl() => {
            return Err("the coordinator cannot check key permissions one by one".into());
        }
        None => {}
    }
    Ok(args)
}

/// A local job ended: report it, for a share of another coordinator or of our own.
#[allow(clippy::too_many_arguments)]
fn job_end(
    f: &Fns,
    ctx: Ctx,
    s: &mut State,
    job: u64,
    state: &'static str,
    counts: Counts,
    elapsed_ms: u64,
    reason: String,
    now: Instant,
) {
    let end = match state {
        "done" => ShareEnd::Done,
        "cancelled" => ShareEnd::Cancelled,
        _ if !is_primary(f, ctx) => ShareEnd::Handover,
        _ => ShareEnd::Aborted,
    };
    for sv in &mut s.served {
        if matches!(sv.phase, Phase::Running { job: j } if j == job) {
            let report = Message::new(
                sv.request,
                Body::Final {
                    end,
                    counts,
                    elapsed_ms,
                    reason: reason.as_bytes().to_vec(),
                },
            );
            send(f, ctx, &sv.coordinator, &report);
            sv.phase = Phase::Ended {
                report,
                repeats: FINAL_REPEATS,
                until: now + REMEMBER,
            };
            sv.last_sent = now;
        }
    }
    for c in &mut s.coords {
        if c.local_job == Some(job) {
            let me = c.my_id.clone();
            if c.book.on_final(&me, end, counts, &reason, now) && end == ShareEnd::Handover {
                try_take_over(f, ctx, c, &me, now);
            }
        }
    }
}

/// Heartbeats and repeated final reports of the shares this node runs for others.
fn serve(f: &Fns, ctx: Ctx, s: &mut State, now: Instant) {
    s.served.retain_mut(|sv| {
        let due = now.saturating_duration_since(sv.last_sent) >= HEARTBEAT;
        match &mut sv.phase {
            Phase::Prepared { until, .. } => now < *until,
            Phase::Running { job } => {
                if due {
                    if let Some((counts, elapsed_ms)) = jobs::progress(*job) {
                        let m = Message::new(sv.request, Body::Progress { counts, elapsed_ms });
                        send(f, ctx, &sv.coordinator, &m);
                        sv.last_sent = now;
                    }
                }
                true
            }
            Phase::Ended {
                report,
                repeats,
                until,
            } => {
                if due && *repeats > 0 {
                    send(f, ctx, &sv.coordinator, report);
                    *repeats -= 1;
                    sv.last_sent = now;
                }
                now < *until
            }
        }
    });
}

/// One turn of a sweep this node coordinates.
fn coordinate(f: &Fns, ctx: Ctx, c: &mut Coord, counters: &mut Counters, now: Instant) {
    if c.ending.is_some() {
        // Ended for its caller (cancelled): collect final reports for a while.
        let waited = c
            .ended_at
            .is_some_and(|at| now.saturating_duration_since(at) >= c.book.timeout);
        if waited {
            for node in c.book.unfinished() {
                c.book.lose(&node, "no final report after the sweep ended");
            }
        }
        refresh_local(c, now);
        return;
    }
    if !c.book.running {
        match c.book.precheck(now) {
            Precheck::Waiting => return,
            Precheck::Go => {
                c.book.start(now);
                let me = c.my_id.clone();
                for share in &c.book.shares {
                    if share.node != me {
                        send(f, ctx, &share.node, &Message::new(c.request, Body::Start));
                    }
                }
                if c.book.shares.iter().any(|sh| sh.node == me) {
                    start_local(ctx, c, now);
                }
            }
            Precheck::Refused(nodes) => {
                for share in &c.book.shares {
                    if share.node != c.my_id {
                        send(f, ctx, &share.node, &Message::new(c.request, Body::Cancel));
                    }
                }
                let list = nodes
                    .iter()
                    .map(|(addr, why)| format!("{addr} ({why})"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let why = format!("sweep refused: {list}; nothing was deleted");
                end(f, ctx, c, "aborted", Some(why), now);
                return;
            }
        }
    }
    refresh_local(c, now);
    // Failovers: a share whose node is now a replica, or failed, goes to whoever took its slots.
    let live: Vec<String> = c
        .book
        .shares
        .iter()
        .filter(|sh| sh.state.is_live())
        .map(|sh| sh.node.clone())
        .collect();
    for node in live {
        let Some(info) = node_info(f, ctx, &node) else {
            continue;
        };
        if (info.is_replica() || info.failed())
            && !try_take_over(f, ctx, c, &node, now)
            && info.failed()
        {
            let has_replicas = c
                .replicas
                .iter()
                .any(|(p, list)| *p == node && !list.is_empty());
            if !has_replicas {
                c.book
                    .lose(&node, "the cluster marked it failed and it has no replica");
            }
        }
    }
    c.book.expire_takeovers(now);
    for node in c.book.overdue(now) {
        if !try_take_over(f, ctx, c, &node, now) {
            counters.shares_timed_out += 1;
            let ms = c.book.timeout.as_millis();
            c.book.lose(&node, &format!("no news for {ms} ms"));
        }
    }
    if c.book.is_finished() {
        let failures = c.book.failures();
        if failures.is_empty() {
            end(f, ctx, c, "done", None, now);
        } else {
            let list = failures
                .iter()
                .map(|(addr, why)| format!("{addr} ({why})"))
                .collect::<Vec<_>>()
                .join(", ");
            end(
                f,
                ctx,
                c,
                "aborted",
                Some(format!("sweep incomplete: {list}")),
                now,
            );
        }
    }
}

/// The coordinator's own share: its counts so far.
fn refresh_local(c: &mut Coord, now: Instant) {
    if let Some(job) = c.local_job {
        if let Some((counts, _)) = jobs::progress(job) {
            let me = c.my_id.clone();
            c.book.on_progress(&me, counts, now);
        }
    }
}

fn start_local(ctx: Ctx, c: &mut Coord, now: Instant) {
    let me = c.my_id.clone();
    let started = ClearArgs::parse(&c.words)
        .and_then(|args| jobs::start_share(ctx, args, c.db, c.user.clone(), c.my_addr.clone()));
    match started {
        Ok(job) => c.local_job = Some(job),
        Err(e) => {
            let why = e.to_string();
            c.book.on_final(
                &me,
                ShareEnd::Aborted,
                Counts::default(),
                why.trim_start_matches("ERR "),
                now,
            );
        }
    }
}

/// Finds the node that took over `node`'s slots (its primary now, if it became a replica; or
/// one of its replicas promoted) and hands it the share. False if nobody has.
fn try_take_over(f: &Fns, ctx: Ctx, c: &mut Coord, node: &str, now: Instant) -> bool {
    let info = node_info(f, ctx, node);
    let heir = match info {
        Some(i) if i.is_replica() => i.primary.filter(|p| p != node),
        _ => None,
    }
    .or_else(|| {
        c.replicas
            .iter()
            .find(|(p, _)| p == node)
            .and_then(|(_, list)| {
                list.iter()
                    .find(|r| node_info(f, ctx, r).is_some_and(|i| i.is_primary() && !i.failed()))
                    .cloned()
            })
    });
    let Some(heir) = heir else {
        return false;
    };
    let addr = node_info(f, ctx, &heir)
        .map(|i| i.addr)
        .unwrap_or_else(|| heir.clone());
    if !c.book.take_over(node, heir.clone(), addr, now) {
        return false;
    }
    // The heir may take over again later: it inherits the replica list of the old primary.
    if let Some((_, list)) = c.replicas.iter().find(|(p, _)| p == node).cloned() {
        let others: Vec<String> = list.into_iter().filter(|r| *r != heir).collect();
        c.replicas.push((heir.clone(), others));
    }
    if heir == c.my_id {
        c.book.on_ready(&heir, true, "", now);
        start_local(ctx, c, now);
    } else {
        send(f, ctx, &heir, &prepare(c));
    }
    true
}

/// Cancels every share of a sweep (`SWEEP.CANCEL`, or its caller went away).
fn cancel_coord(f: &Fns, ctx: Ctx, c: &mut Coord, now: Instant) {
    if c.ending.is_some() {
        return;
    }
    for node in c.book.unfinished() {
        if node == c.my_id {
            if let Some(job) = c.local_job {
                if let Ok(fields) = jobs::cancel(ctx, job) {
                    // The job's end also arrives through `job_ended`; take its counts now.
                    let counts = counts_of(&fields);
                    let me = c.my_id.clone();
                    c.book.on_final(&me, ShareEnd::Cancelled, counts, "", now);
                }
            } else {
                c.book.lose(&node, "cancelled before it started");
            }
        } else {
            send(f, ctx, &node, &Message::new(c.request, Body::Cancel));
            if !c.book.running {
                c.book.lose(&node, "cancelled before it started");
            }
        }
    }
    end(f, ctx, c, "cancelled", None, now);
}

fn counts_of(fields: &[(&'static str, Value)]) -> Counts {
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| *n == name)
            .and_then(|(_, v)| match v {
                Value::Int(i) => u64::try_from(*i).ok(),
                _ => None,
            })
            .unwrap_or(0)
    };
    Counts {
        scanned: get("scanned"),
        matched: get("matched"),
        deleted: get("deleted"),
        denied: get("denied"),
        expired: get("expired"),
        slices: get("slices"),
        slice_max_us: 0,
    }
}

/// The sweep ends for its caller: reply (blocking) or keep the outcome (`ASYNC`).
fn end(f: &Fns, ctx: Ctx, c: &mut Coord, state: &'static str, why: Option<String>, now: Instant) {
    let elapsed_ms = u64::try_from(now.saturating_duration_since(c.book.started).as_millis())
        .unwrap_or(u64::MAX);
    c.elapsed_ms = Some(elapsed_ms);
    c.ending = Some((state, why.clone()));
    c.ended_at = Some(now);
    let sum = c.book.sum();
    let nodes = c.book.nodes_done();
    log(
        f,
        ctx,
        raw::REDISMODULE_LOGLEVEL_NOTICE,
        &format!(
            "sweep {} (cluster, {} shares) of {} on db {} {}{}: {}, nodes {}",
            c.id,
            c.book.shares.len(),
            crate::jobs::patterns_shown(&c.pattern, &c.or, &c.except),
            c.db,
            state,
            why.as_ref().map(|w| format!(" ({w})")).unwrap_or_default(),
            sum.summary(elapsed_ms),
            nodes
        ),
    );
    if let Some(client) = c.client.take() {
        let reply = match why {
            Some(why) => Reply::Error(format!(
                "ERR {why}; {}, nodes {nodes}",
                sum.summary(elapsed_ms)
            )),
            None => Reply::Fields(reply_fields(&sum, elapsed_ms, nodes)),
        };
        client.unblock(reply);
    }
}

fn reply_fields(sum: &Counts, elapsed_ms: u64, nodes: u64) -> Vec<(&'static str, Value)> {
    let mut fields: Vec<(&'static str, Value)> = sum
        .fields(elapsed_ms)
        .iter()
        .map(|&(name, value)| (name, Value::Int(value)))
        .collect();
    fields.push((
        "nodes",
        Value::Int(i64::try_from(nodes).unwrap_or(i64::MAX)),
    ));
    fields
}

fn status_fields(c: &Coord, now: Instant) -> Vec<(&'static str, Value)> {
    let elapsed_ms = c.elapsed_ms.unwrap_or_else(|| {
        u64::try_from(now.saturating_duration_since(c.book.started).as_millis()).unwrap_or(u64::MAX)
    });
    let (state, why) = match &c.ending {
        Some((state, why)) => (*state, why.clone()),
        None => ("running", None),
    };
    let total = c.book.shares.len().max(1) as f64;
    let final_shares = c.book.shares.iter().filter(|s| s.state.is_final()).count() as f64;
    let progress = if state == "running" {
        ((final_shares / total) * 1e4).round() / 1e4
    } else {
        1.0
    };
    let mut fields = vec![
        ("id", Value::Int(i64::try_from(c.id).unwrap_or(i64::MAX))),
        ("state", Value::Bytes(state.as_bytes().to_vec())),
        ("pattern", Value::Bytes(c.pattern.clone())),
        ("or", Value::Strings(c.or.clone())),
        ("except", Value::Strings(c.except.clone())),
        ("db", Value::Int(i64::from(c.db))),
        ("progress", Value::Double(progress)),
    ];
    fields.extend(reply_fields(&c.book.sum(), elapsed_ms, c.book.nodes_done()));
    if let Some(why) = why {
        fields.push(("reason", Value::Bytes(why.into_bytes())));
    }
    let shards = c
        .book
        .shares
        .iter()
        .map(|sh| {
            let state = match &sh.state {
                ShareState::Ended(ShareEnd::Handover, _) => "running",
                other => other.name(),
            };
            let mut f: Vec<(&'static str, Value)> = vec![
                ("node", Value::Bytes(sh.addr.as_bytes().to_vec())),
                ("state", Value::Bytes(state.as_bytes().to_vec())),
            ];
            let total = sh.total();
            f.extend(
                total
                    .fields(0)
                    .iter()
                    .filter(|(n, _)| *n != "elapsed_ms")
                    .map(|&(n, v)| (n, Value::Int(v))),
            );
            f
        })
        .collect();
    fields.push(("shards", Value::List(shards)));
    fields
}

/// `SWEEP.STATUS id` for a cluster sweep coordinated here; `None` if `id` is not one.
pub fn status_of(id: u64) -> Option<Vec<(&'static str, Value)>> {
    let now = Instant::now();
    STATE.with(|s| {
        let s = s.try_borrow().ok()?;
        s.coords
            .iter()
            .chain(s.history.iter())
            .find(|c| c.id == id)
            .map(|c| status_fields(c, now))
    })
}

/// Every cluster sweep coordinated here, running and kept: `(id, fields)`.
pub fn status_all() -> Vec<(u64, Vec<(&'static str, Value)>)> {
    let now = Instant::now();
    STATE.with(|s| {
        let Ok(s) = s.try_borrow() else {
            return Vec::new();
        };
        s.coords
            .iter()
            .chain(s.history.iter())
            .map(|c| (c.id, status_fields(c, now)))
            .collect()
    })
}

/// `SWEEP.CANCEL id` for a cluster sweep coordinated here; `None` if `id` is not one.
pub fn cancel(ctx: Ctx, id: u64) -> Option<Result<Vec<(&'static str, Value)>, SweepError>> {
    let f = fns()?;
    let now = Instant::now();
    STATE.with(|s| {
        let mut s = s.try_borrow_mut().ok()?;
        if let Some(c) = s.history.iter().find(|c| c.id == id) {
            let state = c.ending.as_ref().map_or("done", |(st, _)| *st);
            return Some(Err(SweepError::JobEnded(id, state)));
        }
        let c = s.coords.iter_mut().find(|c| c.id == id)?;
        if let Some((state, _)) = &c.ending {
            return Some(Err(SweepError::JobEnded(id, state)));
        }
        cancel_coord(f, ctx, c, now);
        let fields = status_fields(c, now);
        arm(f, ctx, &mut s, 0);
        Some(Ok(fields))
    })
}
