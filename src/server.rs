//! The one layer that calls into the server. Every `unsafe` block of the module is here.
//!
//! At load time [`Api::load`] checks that every function the module needs exists on the running
//! server and keeps plain function pointers, so nothing later can meet a missing function (every
//! `raw::RedisModule_*` is an `Option`, `None` on servers that predate it).

use std::cell::Cell;
use std::collections::VecDeque;
use std::ffi::{c_char, c_int, c_void, CStr};
use std::os::raw::c_longlong;
use std::ptr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use redis_module::raw;
use sweep_core::args::Ttl;
use sweep_core::minsize;
use sweep_core::patterns::PatternSet;
use sweep_core::sweep::{KeyOutcome, Keyspace, Outcomes, ScanStep};

type Ctx = *mut raw::RedisModuleCtx;
type Str = *mut raw::RedisModuleString;

/// The server functions the module calls after loading, checked once.
pub struct Api {
    scan_cursor_create: unsafe extern "C" fn() -> *mut raw::RedisModuleScanCursor,
    scan_cursor_destroy: unsafe extern "C" fn(*mut raw::RedisModuleScanCursor),
    scan: unsafe extern "C" fn(
        Ctx,
        *mut raw::RedisModuleScanCursor,
        raw::RedisModuleScanCB,
        *mut c_void,
    ) -> c_int,
    string_ptr_len:
        unsafe extern "C" fn(*const raw::RedisModuleString, *mut usize) -> *const c_char,
    retain_string: unsafe extern "C" fn(Ctx, Str),
    /// 6.0.7+: like `retain_string`, but copies a string the server may not let us keep (a
    /// shared or stack object), so holding the scan's key name never depends on how the server
    /// built it.
    hold_string: Option<unsafe extern "C" fn(Ctx, Str) -> Str>,
    free_string: unsafe extern "C" fn(Ctx, Str),
    open_key: unsafe extern "C" fn(Ctx, Str, c_int) -> *mut raw::RedisModuleKey,
    key_type: unsafe extern "C" fn(*mut raw::RedisModuleKey) -> c_int,
    value_length: unsafe extern "C" fn(*mut raw::RedisModuleKey) -> usize,
    get_expire: unsafe extern "C" fn(*mut raw::RedisModuleKey) -> raw::mstime_t,
    unlink_key: unsafe extern "C" fn(*mut raw::RedisModuleKey) -> c_int,
    close_key: unsafe extern "C" fn(*mut raw::RedisModuleKey),
    notify: unsafe extern "C" fn(Ctx, c_int, *const c_char, Str) -> c_int,
    replicate: unsafe extern "C" fn(Ctx, *const c_char, *const c_char, ...) -> c_int,
    select_db: unsafe extern "C" fn(Ctx, c_int) -> c_int,
    selected_db: unsafe extern "C" fn(Ctx) -> c_int,
    context_flags: unsafe extern "C" fn(Ctx) -> c_int,
    avoid_replica_traffic: unsafe extern "C" fn() -> c_int,
    block_client: unsafe extern "C" fn(
        Ctx,
        raw::RedisModuleCmdFunc,
        raw::RedisModuleCmdFunc,
        Option<unsafe extern "C" fn(Ctx, *mut c_void)>,
        c_longlong,
    ) -> *mut raw::RedisModuleBlockedClient,
    set_disconnect_callback:
        unsafe extern "C" fn(*mut raw::RedisModuleBlockedClient, raw::RedisModuleDisconnectFunc),
    unblock_client: unsafe extern "C" fn(*mut raw::RedisModuleBlockedClient, *mut c_void) -> c_int,
    blocked_private_data: unsafe extern "C" fn(Ctx) -> *mut c_void,
    reply_with_array: unsafe extern "C" fn(Ctx, std::os::raw::c_long) -> c_int,
    reply_with_map: Option<unsafe extern "C" fn(Ctx, std::os::raw::c_long) -> c_int>,
    reply_with_string_buffer: unsafe extern "C" fn(Ctx, *const c_char, usize) -> c_int,
    reply_with_long_long: unsafe extern "C" fn(Ctx, c_longlong) -> c_int,
    reply_with_error: unsafe extern "C" fn(Ctx, *const c_char) -> c_int,
    log: unsafe extern "C" fn(Ctx, *const c_char, *const c_char, ...),
    db_size: unsafe extern "C" fn(Ctx) -> std::os::raw::c_ulonglong,
    get_lru: unsafe extern "C" fn(*mut raw::RedisModuleKey, *mut raw::mstime_t) -> c_int,
    reply_with_double: unsafe extern "C" fn(Ctx, f64) -> c_int,
    call: unsafe extern "C" fn(
        Ctx,
        *const c_char,
        *const c_char,
        ...
    ) -> *mut raw::RedisModuleCallReply,
    call_reply_type: unsafe extern "C" fn(*mut raw::RedisModuleCallReply) -> c_int,
    call_reply_length: unsafe extern "C" fn(*mut raw::RedisModuleCallReply) -> usize,
    call_reply_integer: unsafe extern "C" fn(*mut raw::RedisModuleCallReply) -> c_longlong,
    call_reply_element: unsafe extern "C" fn(
        *mut raw::RedisModuleCallReply,
        usize,
    ) -> *mut raw::RedisModuleCallReply,
    call_reply_string:
        unsafe extern "C" fn(*mut raw::RedisModuleCallReply, *mut usize) -> *const c_char,
    free_call_reply: unsafe extern "C" fn(*mut raw::RedisModuleCallReply),
    info_add_section: unsafe extern "C" fn(*mut raw::RedisModuleInfoCtx, *const c_char) -> c_int,
    info_add_long_long:
        unsafe extern "C" fn(*mut raw::RedisModuleInfoCtx, *const c_char, c_longlong) -> c_int,
    /// 6.2+: attributes time spent in slices to the blocked command (SLOWLOG, commandstats).
    measure_start: Option<unsafe extern "C" fn(*mut raw::RedisModuleBlockedClient) -> c_int>,
    measure_end: Option<unsafe extern "C" fn(*mut raw::RedisModuleBlockedClient) -> c_int>,
    latency_add_sample: Option<unsafe extern "C" fn(*const c_char, raw::mstime_t)>,
    create_string: unsafe extern "C" fn(Ctx, *const c_char, usize) -> Str,
    /// 7.0+: per-key ACL checks.
    acl: Option<AclApi>,
    /// Present from Redis 7.0: drives slices from the event loop. Without it, timers do.
    event_loop: Option<EventLoopApi>,
    create_timer: unsafe extern "C" fn(
        Ctx,
        raw::mstime_t,
        raw::RedisModuleTimerProc,
        *mut c_void,
    ) -> raw::RedisModuleTimerID,
    /// How sweeps visit keys and delete them on this server, chosen at load time.
    pub mechanism: Mechanism,
}

/// How a sweep visits the keyspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visit {
    /// `RedisModule_Scan`: one hash bucket per call, every name handed over as a string object.
    ModuleScan,
    /// The server's own `SCAN cursor MATCH … COUNT …` through `RedisModule_Call`: the server
    /// filters the names itself, so names that cannot match are never copied.
    ScanCommand,
}

/// How a sweep deletes the keys of a batch that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delete {
    /// Open, unlink, close and notify key by key.
    PerKey,
    /// One `UNLINK` call through `RedisModule_Call` for a batch of names (up to
    /// [`sweep_core::sweep::MAX_DELETE_BATCH`], fewer in a short slice).
    UnlinkCall,
}

/// The mechanisms of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mechanism {
    pub visit: Visit,
    pub delete: Delete,
}

impl Mechanism {
    /// What measured cheapest (README, "Cost per key"): the same on every server measured
    /// (Redis 7.0, 7.4, 8.6, Valkey 9.1), so no version decides it. `REDIS_SWEEP_VISIT`
    /// (`module-scan` or `scan-command`) and `REDIS_SWEEP_DELETE` (`per-key` or `unlink-call`)
    /// in the server's environment override it, for the benches and tests that compare them.
    /// Where the server refuses `SCAN` or `UNLINK`, a sweep falls back on its own.
    fn choose() -> Mechanism {
        let mut m = Mechanism {
            visit: Visit::ScanCommand,
            delete: Delete::UnlinkCall,
        };
        match std::env::var("REDIS_SWEEP_VISIT").as_deref() {
            Ok("module-scan") => m.visit = Visit::ModuleScan,
            Ok("scan-command") => m.visit = Visit::ScanCommand,
            _ => {}
        }
        match std::env::var("REDIS_SWEEP_DELETE").as_deref() {
            Ok("per-key") => m.delete = Delete::PerKey,
            Ok("unlink-call") => m.delete = Delete::UnlinkCall,
            _ => {}
        }
        m
    }

    /// For the load log line.
    pub fn describe(&self) -> String {
        let visit = match self.visit {
            Visit::ModuleScan => "module-scan",
            Visit::ScanCommand => "scan-command",
        };
        let delete = match self.delete {
            Delete::PerKey => "per-key",
            Delete::UnlinkCall => "unlink-call",
        };
        format!("visit: {visit}, delete: {delete}")
    }
}

#[derive(Clone, Copy)]
struct AclApi {
    current_user_name: unsafe extern "C" fn(Ctx) -> Str,
    user_from_name: unsafe extern "C" fn(Str) -> *mut raw::RedisModuleUser,
    free_user: unsafe extern "C" fn(*mut raw::RedisModuleUser),
    check_key: unsafe extern "C" fn(*mut raw::RedisModuleUser, Str, c_int) -> c_int,
}

#[derive(Clone, Copy)]
pub struct EventLoopApi {
    add: unsafe extern "C" fn(c_int, c_int, raw::RedisModuleEventLoopFunc, *mut c_void) -> c_int,
    del: unsafe extern "C" fn(c_int, c_int) -> c_int,
}

static API: OnceLock<Api> = OnceLock::new();

/// The checked server functions; `None` only before a successful load.
pub fn api() -> Option<&'static Api> {
    API.get()
}

macro_rules! need {
    ($missing:ident, $name:ident) => {
        // SAFETY: the server filled these pointers in `RedisModule_Init`, before any of the
        // module's code runs; they are only read afterwards.
        match unsafe { raw::$name } {
            Some(f) => f,
            None => {
                $missing.push(stringify!($name));
                return Err($missing);
            }
        }
    };
}

impl Api {
    /// Checks the server functions the module needs. Returns the names that are missing.
    pub fn load() -> Result<&'static Api, Vec<&'static str>> {
        let mut missing = Vec::new();
        let event_loop = {
            // SAFETY: as in `need!`.
            let (add, del) =
                unsafe { (raw::RedisModule_EventLoopAdd, raw::RedisModule_EventLoopDel) };
            match (add, del) {
                (Some(add), Some(del)) => Some(EventLoopApi { add, del }),
                _ => None,
            }
        };
        // SAFETY: as in `need!`.
        let acl = unsafe {
            match (
                raw::RedisModule_GetCurrentUserName,
                raw::RedisModule_GetModuleUserFromUserName,
                raw::RedisModule_FreeModuleUser,
                raw::RedisModule_ACLCheckKeyPermissions,
            ) {
                (
                    Some(current_user_name),
                    Some(user_from_name),
                    Some(free_user),
                    Some(check_key),
                ) => Some(AclApi {
                    current_user_name,
                    user_from_name,
                    free_user,
                    check_key,
                }),
                _ => None,
            }
        };
        let api = Api {
            scan_cursor_create: need!(missing, RedisModule_ScanCursorCreate),
            scan_cursor_destroy: need!(missing, RedisModule_ScanCursorDestroy),
            scan: need!(missing, RedisModule_Scan),
            string_ptr_len: need!(missing, RedisModule_StringPtrLen),
            retain_string: need!(missing, RedisModule_RetainString),
            // SAFETY: as in `need!`.
            hold_string: unsafe { raw::RedisModule_HoldString },
            free_string: need!(missing, RedisModule_FreeString),
            open_key: need!(missing, RedisModule_OpenKey),
            key_type: need!(missing, RedisModule_KeyType),
            value_length: need!(missing, RedisModule_ValueLength),
            get_expire: need!(missing, RedisModule_GetExpire),
            unlink_key: need!(missing, RedisModule_UnlinkKey),
            close_key: need!(missing, RedisModule_CloseKey),
            notify: need!(missing, RedisModule_NotifyKeyspaceEvent),
            replicate: need!(missing, RedisModule_Replicate),
            select_db: need!(missing, RedisModule_SelectDb),
            selected_db: need!(missing, RedisModule_GetSelectedDb),
            context_flags: need!(missing, RedisModule_GetContextFlags),
            avoid_replica_traffic: need!(missing, RedisModule_AvoidReplicaTraffic),
            block_client: need!(missing, RedisModule_BlockClient),
            set_disconnect_callback: need!(missing, RedisModule_SetDisconnectCallback),
            unblock_client: need!(missing, RedisModule_UnblockClient),
            blocked_private_data: need!(missing, RedisModule_GetBlockedClientPrivateData),
            reply_with_array: need!(missing, RedisModule_ReplyWithArray),
            // SAFETY: as in `need!`.
            reply_with_map: unsafe { raw::RedisModule_ReplyWithMap },
            reply_with_string_buffer: need!(missing, RedisModule_ReplyWithStringBuffer),
            reply_with_long_long: need!(missing, RedisModule_ReplyWithLongLong),
            reply_with_error: need!(missing, RedisModule_ReplyWithError),
            log: need!(missing, RedisModule_Log),
            db_size: need!(missing, RedisModule_DbSize),
            get_lru: need!(missing, RedisModule_GetLRU),
            reply_with_double: need!(missing, RedisModule_ReplyWithDouble),
            call: need!(missing, RedisModule_Call),
            call_reply_type: need!(missing, RedisModule_CallReplyType),
            call_reply_length: need!(missing, RedisModule_CallReplyLength),
            call_reply_integer: need!(missing, RedisModule_CallReplyInteger),
            call_reply_element: need!(missing, RedisModule_CallReplyArrayElement),
            call_reply_string: need!(missing, RedisModule_CallReplyStringPtr),
            free_call_reply: need!(missing, RedisModule_FreeCallReply),
            info_add_section: need!(missing, RedisModule_InfoAddSection),
            info_add_long_long: need!(missing, RedisModule_InfoAddFieldLongLong),
            // SAFETY: as in `need!`.
            measure_start: unsafe { raw::RedisModule_BlockedClientMeasureTimeStart },
            // SAFETY: as in `need!`.
            measure_end: unsafe { raw::RedisModule_BlockedClientMeasureTimeEnd },
            // SAFETY: as in `need!`.
            latency_add_sample: unsafe { raw::RedisModule_LatencyAddSample },
            create_string: need!(missing, RedisModule_CreateString),
            acl,
            event_loop,
            create_timer: need!(missing, RedisModule_CreateTimer),
            mechanism: Mechanism::choose(),
        };
        Ok(API.get_or_init(|| api))
    }

    pub fn has_event_loop(&self) -> bool {
        self.event_loop.is_some()
    }

    /// The database the context has selected.
    pub fn selected_db(&self, ctx: Ctx) -> i32 {
        // SAFETY: `ctx` is the live context of the callback or command that passed it.
        unsafe { (self.selected_db)(ctx) }
    }

    pub fn select_db(&self, ctx: Ctx, db: i32) -> bool {
        // SAFETY: as above; the server checks the id.
        unsafe { (self.select_db)(ctx, db) == raw::REDISMODULE_OK as c_int }
    }

    fn flags(&self, ctx: Ctx) -> u32 {
        // SAFETY: as above.
        let flags = unsafe { (self.context_flags)(ctx) };
        u32::try_from(flags).unwrap_or(0)
    }

    /// Whether the caller can be blocked: not inside MULTI, a script, a function or another
    /// module's `RM_Call` (blocking there crashes the server on some versions).
    pub fn can_block(&self, ctx: Ctx) -> bool {
        let deny = raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING
            | raw::REDISMODULE_CTX_FLAGS_MULTI
            | raw::REDISMODULE_CTX_FLAGS_LUA;
        self.flags(ctx) & deny == 0
    }

    /// Whether this node is a primary (writes here are the dataset's truth).
    pub fn is_primary(&self, ctx: Ctx) -> bool {
        self.flags(ctx) & raw::REDISMODULE_CTX_FLAGS_MASTER != 0
    }

    /// True while the server must not produce writes (`CLIENT PAUSE WRITE`, a failover).
    pub fn writes_paused(&self) -> bool {
        // SAFETY: takes no argument; called on the main thread.
        unsafe { (self.avoid_replica_traffic)() != 0 }
    }

    /// Writes one line to the server log at `notice` level.
    pub fn log_notice(&self, ctx: Ctx, line: &str) {
        let Ok(line) = std::ffi::CString::new(line.replace('\0', " ")) else {
            return;
        };
        // SAFETY: `%s` with a NUL-terminated string that lives for the call.
        unsafe {
            (self.log)(
                ctx,
                raw::REDISMODULE_LOGLEVEL_NOTICE.as_ptr().cast(),
                c"%s".as_ptr(),
                line.as_ptr(),
            )
        }
    }

    /// The bytes of a server string, valid while the string is.
    ///
    /// # Safety
    /// `s` must be a live `RedisModuleString`.
    unsafe fn bytes<'a>(&self, s: *const raw::RedisModuleString) -> &'a [u8] {
        let mut len = 0usize;
        let p = (self.string_ptr_len)(s, &mut len);
        if p.is_null() {
            return &[];
        }
        std::slice::from_raw_parts(p.cast::<u8>(), len)
    }

    /// Whether the server can check a user's permission on each key (7.0+).
    pub fn has_key_acl(&self) -> bool {
        self.acl.is_some()
    }

    /// The name of the user the command runs as (7.0+; only in the command's own context).
    pub fn caller_name(&self, ctx: Ctx) -> Option<Vec<u8>> {
        let acl = self.acl?;
        // SAFETY: `ctx` is the command's context, where the call is valid.
        let name = unsafe { (acl.current_user_name)(ctx) };
        if name.is_null() {
            return None;
        }
        // SAFETY: `name` is a live string returned to us; we free it once.
        let bytes = unsafe { self.bytes(name) }.to_vec();
        // SAFETY: as above.
        unsafe { (self.free_string)(ptr::null_mut(), name) };
        Some(bytes)
    }

    /// For servers without per-key ACL checks (before 7.0): whether the calling client's user
    /// may touch every key (`allkeys`), read from `ACL GETUSER`. `None` when it cannot be told.
    pub fn caller_has_all_keys(&self, ctx: Ctx) -> Option<bool> {
        // SAFETY: as in `need!`.
        let (id_of, name_of) = unsafe {
            (
                raw::RedisModule_GetClientId?,
                raw::RedisModule_GetClientUserNameById?,
            )
        };
        // SAFETY: `ctx` is the command's context.
        let name = unsafe { name_of(ctx, id_of(ctx)) };
        if name.is_null() {
            return None;
        }
        // SAFETY: "cs" takes a C string and a live string; the reply is freed below.
        let reply = unsafe {
            (self.call)(
                ctx,
                c"ACL".as_ptr(),
                c"cs".as_ptr(),
                c"GETUSER".as_ptr(),
                name,
            )
        };
        // SAFETY: the name was returned to us; freed once.
        unsafe { (self.free_string)(ptr::null_mut(), name) };
        if reply.is_null() {
            return None;
        }
        // SAFETY: `reply` and its elements are live until it is freed below.
        let found = unsafe {
            let n = (self.call_reply_length)(reply);
            let mut found = None;
            for i in 0..n.saturating_sub(1) {
                let field = self.reply_text((self.call_reply_element)(reply, i));
                if field.as_deref() == Some("flags") {
                    let flags = (self.call_reply_element)(reply, i + 1);
                    let count = (self.call_reply_length)(flags);
                    found = Some((0..count).any(|j| {
                        self.reply_text((self.call_reply_element)(flags, j))
                            .as_deref()
                            == Some("allkeys")
                    }));
                }
            }
            found
        };
        // SAFETY: freed once.
        unsafe { (self.free_call_reply)(reply) };
        found
    }

    /// Looks a user up by name, as it is now. `None` once the user no longer exists.
    pub fn user(&self, name: &[u8]) -> Option<User> {
        let acl = self.acl?;
        // SAFETY: creates a string from a live buffer; freed below.
        let s = unsafe { (self.create_string)(ptr::null_mut(), name.as_ptr().cast(), name.len()) };
        if s.is_null() {
            return None;
        }
        // SAFETY: `s` is live; the user handle is freed by `User`'s drop.
        let user = unsafe { (acl.user_from_name)(s) };
        // SAFETY: freed once.
        unsafe { (self.free_string)(ptr::null_mut(), s) };
        if user.is_null() {
            None
        } else {
            Some(User { ptr: user, acl })
        }
    }

    /// Keys in the context's selected database.
    pub fn db_size(&self, ctx: Ctx) -> u64 {
        // SAFETY: `ctx` is live.
        unsafe { (self.db_size)(ctx) }
    }

    /// A server config's value, through `CONFIG GET` (for the few settings the module API does
    /// not expose).
    pub fn config_get(&self, ctx: Ctx, name: &CStr) -> Option<String> {
        // SAFETY: "cc" takes two NUL-terminated strings; the reply is freed below.
        let reply = unsafe {
            (self.call)(
                ctx,
                c"CONFIG".as_ptr(),
                c"cc".as_ptr(),
                c"GET".as_ptr(),
                name.as_ptr(),
            )
        };
        if reply.is_null() {
            return None;
        }
        // SAFETY: `reply` is live until freed; elements belong to it.
        let value = unsafe {
            if (self.call_reply_type)(reply) == raw::REDISMODULE_REPLY_ARRAY as c_int
                && (self.call_reply_length)(reply) >= 2
            {
                self.reply_text((self.call_reply_element)(reply, 1))
            } else {
                None
            }
        };
        // SAFETY: freed once.
        unsafe { (self.free_call_reply)(reply) };
        value
    }

    /// The name `TYPE` gives a key (for module types, whose names the module API does not
    /// expose otherwise).
    fn type_name(&self, ctx: Ctx, key: Str) -> Option<Vec<u8>> {
        // SAFETY: "s" takes a live string; the reply is freed below.
        let reply = unsafe { (self.call)(ctx, c"TYPE".as_ptr(), c"s".as_ptr(), key) };
        if reply.is_null() {
            return None;
        }
        // SAFETY: `reply` is live until freed.
        let name = unsafe { self.reply_text(reply) };
        // SAFETY: freed once.
        unsafe { (self.free_call_reply)(reply) };
        name.map(String::into_bytes)
    }

    /// `MEMORY USAGE key` with its default sampling, as the server computes it: `None` when the
    /// key is gone or the server refuses the command. The server looks the key up without
    /// touching it (`objectCommandLookup`: no access time, no keyspace event).
    fn memory_usage(&self, ctx: Ctx, key: Str) -> Option<i64> {
        // SAFETY: "cs" takes a C string and a live string; the reply is freed below.
        let reply = unsafe {
            (self.call)(
                ctx,
                c"MEMORY".as_ptr(),
                c"cs".as_ptr(),
                c"USAGE".as_ptr(),
                key,
            )
        };
        if reply.is_null() {
            return None;
        }
        // SAFETY: `reply` is live until freed.
        let usage = unsafe {
            if (self.call_reply_type)(reply) == raw::REDISMODULE_REPLY_INTEGER as c_int {
                Some((self.call_reply_integer)(reply))
            } else {
                None
            }
        };
        // SAFETY: freed once.
        unsafe { (self.free_call_reply)(reply) };
        usage
    }

    /// Whether the `MEMORY` command answers here (it may be renamed away): `MEMORY HELP`, which
    /// names no key (so no cluster redirection applies), replies with an array.
    pub fn memory_usage_works(&self, ctx: Ctx) -> bool {
        // SAFETY: "c" takes a NUL-terminated string; the reply is freed below.
        let reply =
            unsafe { (self.call)(ctx, c"MEMORY".as_ptr(), c"c".as_ptr(), c"HELP".as_ptr()) };
        if reply.is_null() {
            return false;
        }
        // SAFETY: `reply` is live until freed.
        let kind = unsafe { (self.call_reply_type)(reply) };
        // SAFETY: freed once.
        unsafe { (self.free_call_reply)(reply) };
        kind == raw::REDISMODULE_REPLY_ARRAY as c_int
    }

    /// # Safety
    /// `reply` must be a live call reply (or NULL).
    unsafe fn reply_text(&self, reply: *mut raw::RedisModuleCallReply) -> Option<String> {
        if reply.is_null() {
            return None;
        }
        let mut len = 0usize;
        let p = (self.call_reply_string)(reply, &mut len);
        if p.is_null() {
            return None;
        }
        let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len);
        Some(String::from_utf8_lossy(bytes).into_owned())
    }

    /// Starts or stops attributing time to a blocked command (SLOWLOG, INFO commandstats).
    pub fn measure(&self, client: &Blocked, start: bool) {
        let f = if start {
            self.measure_start
        } else {
            self.measure_end
        };
        if let Some(f) = f {
            // SAFETY: the blocked client is live (owned by `client`).
            unsafe { f(client.0) };
        }
    }

    /// Records a latency event, as the server records its own slow events.
    pub fn latency_sample(&self, event: &CStr, ms: i64) {
        if let Some(f) = self.latency_add_sample {
            // SAFETY: a NUL-terminated event name.
            unsafe { f(event.as_ptr(), ms) };
        }
    }

    /// Registers the `INFO sweep` callback (replacing the crate's default one).
    pub fn register_info(&self, ctx: Ctx) -> Result<(), String> {
        // SAFETY: as in `need!`.
        let Some(register) = (unsafe { raw::RedisModule_RegisterInfoFunc }) else {
            return Err("this server has no RedisModule_RegisterInfoFunc".into());
        };
        // SAFETY: `ctx` is the load context; the callback never unwinds.
        if unsafe { register(ctx, Some(on_info)) } != raw::REDISMODULE_OK as c_int {
            return Err("cannot register the INFO callback".into());
        }
        Ok(())
    }

    /// Adds the module's section and fields to `INFO`; the server prefixes each field with
    /// `sweep_`.
    fn info_section(&self, ctx: *mut raw::RedisModuleInfoCtx, fields: &[(&CStr, i64)]) {
        // SAFETY: `ctx` is the info context of the callback; NULL names the section after the
        // module; names are NUL-terminated.
        unsafe {
            (self.info_add_section)(ctx, ptr::null());
            for (name, value) in fields {
                (self.info_add_long_long)(ctx, name.as_ptr(), *value);
            }
        }
    }

    /// Replies with an array header (then the caller replies each element).
    pub fn reply_array(&self, ctx: Ctx, len: usize) {
        let n = std::os::raw::c_long::try_from(len).unwrap_or(0);
        // SAFETY: `ctx` may reply.
        unsafe { (self.reply_with_array)(ctx, n) };
    }

    /// Blocks the calling client; its reply will be the `Reply` given to [`Blocked::unblock`].
    pub fn block(&self, ctx: Ctx) -> Option<Blocked> {
        // SAFETY: `ctx` is the command's context; the callbacks are `extern "C"` functions of
        // this file that never unwind.
        let bc =
            unsafe { (self.block_client)(ctx, Some(reply_callback), None, Some(free_reply), 0) };
        if bc.is_null() {
            return None;
        }
        // SAFETY: `bc` was just returned by the server and not yet unblocked.
        unsafe { (self.set_disconnect_callback)(bc, Some(on_disconnect)) };
        Some(Blocked(bc))
    }

    /// A timer that fires once, `ms` milliseconds from now (0: at the next loop iteration).
    pub fn arm_timer_in(
        &self,
        ctx: Ctx,
        ms: i64,
        callback: unsafe extern "C" fn(Ctx, *mut c_void),
    ) -> u64 {
        // SAFETY: `ctx` is live; the callback never unwinds.
        unsafe { (self.create_timer)(ctx, ms, Some(callback), ptr::null_mut()) }
    }

    /// Stops a timer that has not fired. Needed before unloading: some servers (6.2) unload a
    /// module with a pending timer, whose callback then jumps into unmapped code.
    pub fn stop_timer(&self, ctx: Ctx, id: u64) {
        // SAFETY: as in `need!`.
        if let Some(stop) = unsafe { raw::RedisModule_StopTimer } {
            // SAFETY: `ctx` is live; a NULL data pointer asks for nothing back.
            unsafe { stop(ctx, id, ptr::null_mut()) };
        }
    }

    /// Replies with a flat list of fields: a map in RESP3, field-value pairs in RESP2.
    pub fn reply_fields(&self, ctx: Ctx, fields: &[(&str, Value)]) {
        let n = std::os::raw::c_long::try_from(fields.len()).unwrap_or(0);
        // SAFETY: `ctx` is a context that may reply; strings are passed with their lengths.
        unsafe {
            match self.reply_with_map {
                Some(map) => map(ctx, n),
                None => (self.reply_with_array)(ctx, n * 2),
            };
            for (name, value) in fields {
                (self.reply_with_string_buffer)(ctx, name.as_ptr().cast(), name.len());
                match value {
                    Value::Int(i) => (self.reply_with_long_long)(ctx, *i),
                    Value::Double(d) => (self.reply_with_double)(ctx, *d),
                    Value::Bytes(b) => {
                        (self.reply_with_string_buffer)(ctx, b.as_ptr().cast(), b.len())
                    }
                    Value::List(items) => {
                        self.reply_array(ctx, items.len());
                        for item in items {
                            self.reply_fields(ctx, item);
                        }
                        raw::REDISMODULE_OK as c_int
                    }
                    Value::Strings(items) => {
                        let n = std::os::raw::c_long::try_from(items.len()).unwrap_or(0);
                        (self.reply_with_array)(ctx, n);
                        for b in items.iter().take(usize::try_from(n).unwrap_or(0)) {
                            (self.reply_with_string_buffer)(ctx, b.as_ptr().cast(), b.len());
                        }
                        raw::REDISMODULE_OK as c_int
                    }
                };
            }
        }
    }

    pub fn reply_error(&self, ctx: Ctx, message: &str) {
        let clean: String = message
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let Ok(text) = std::ffi::CString::new(clean) else {
            return;
        };
        // SAFETY: a NUL-terminated string that lives for the call.
        unsafe { (self.reply_with_error)(ctx, text.as_ptr()) };
    }
}

/// A value in a reply.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Double(f64),
    Bytes(Vec<u8>),
    /// An array of nested field lists (the `shards` of a cluster job).
    List(Vec<Vec<(&'static str, Value)>>),
    /// An array of strings (the `OR` and `EXCEPT` patterns of a job).
    Strings(Vec<Vec<u8>>),
}

/// What a blocked client is answered with.
pub enum Reply {
    Fields(Vec<(&'static str, Value)>),
    Error(String),
}

/// A client blocked by `SWEEP.CLEAR`. It must be unblocked exactly once: [`Blocked::unblock`]
/// takes it by value, and dropping it unblocks with an error so no path can leak it.
pub struct Blocked(*mut raw::RedisModuleBlockedClient);

impl Blocked {
    pub fn handle(&self) -> usize {
        self.0 as usize
    }

    pub fn unblock(self, reply: Reply) {
        let bc = self.0;
        std::mem::forget(self);
        unblock_raw(bc, reply);
    }
}

impl Drop for Blocked {
    fn drop(&mut self) {
        unblock_raw(
            self.0,
            Reply::Error("ERR sweep ended without a result".into()),
        );
    }
}

fn unblock_raw(bc: *mut raw::RedisModuleBlockedClient, reply: Reply) {
    let Some(api) = api() else { return };
    let data = Box::into_raw(Box::new(reply));
    // SAFETY: `bc` is a blocked client not yet unblocked (guaranteed by `Blocked`'s ownership);
    // the server hands `data` back to `reply_callback` and then to `free_reply`.
    unsafe { (api.unblock_client)(bc, data.cast()) };
}

extern "C" fn on_info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: c_int) {
    if let Some(api) = api() {
        let mut fields = crate::jobs::info_fields();
        fields.extend(crate::cluster::info_fields());
        api.info_section(ctx, &fields);
    }
}

extern "C" fn reply_callback(
    ctx: Ctx,
    _argv: *mut *mut raw::RedisModuleString,
    _argc: c_int,
) -> c_int {
    let Some(api) = api() else {
        return raw::REDISMODULE_OK as c_int;
    };
    // SAFETY: the private data is the `Reply` boxed in `unblock_raw`; `free_reply` frees it
    // after this callback returns, so borrowing it here is sound.
    let reply = unsafe { (api.blocked_private_data)(ctx).cast::<Reply>().as_ref() };
    match reply {
        Some(Reply::Fields(fields)) => api.reply_fields(ctx, fields),
        Some(Reply::Error(message)) => api.reply_error(ctx, message),
        None => api.reply_error(ctx, "ERR sweep ended without a result"),
    }
    raw::REDISMODULE_OK as c_int
}

extern "C" fn free_reply(_ctx: Ctx, data: *mut c_void) {
    if !data.is_null() {
        // SAFETY: `data` is the box leaked in `unblock_raw`; the server frees it once.
        drop(unsafe { Box::from_raw(data.cast::<Reply>()) });
    }
}

extern "C" fn on_disconnect(_ctx: Ctx, bc: *mut raw::RedisModuleBlockedClient) {
    crate::jobs::client_disconnected(bc as usize);
}

/// A key name the scan found, owned by the module until dropped.
pub struct KeyName(Str);

impl KeyName {
    fn bytes<'a>(&'a self, api: &Api) -> &'a [u8] {
        // SAFETY: the string is live while we hold it.
        unsafe { api.bytes(self.0) }
    }
}

impl Drop for KeyName {
    fn drop(&mut self) {
        if let Some(api) = api() {
            // SAFETY: the string was retained in `scan_callback`; this releases that reference.
            unsafe { (api.free_string)(ptr::null_mut(), self.0) };
        }
    }
}

/// A scan cursor of the module scan API; destroyed on drop. Or, with [`Visit::ScanCommand`],
/// the state of a sweep that visits keys with `SCAN … MATCH` through `RedisModule_Call`.
pub struct Cursor(*mut raw::RedisModuleScanCursor, Option<CommandScan>);

/// The state of a sweep that visits keys with the `SCAN` command.
struct CommandScan {
    /// The `MATCH` argument ([`sweep_core::patterns::scan_match`]).
    pattern: Vec<u8>,
    /// The sweep's `COUNT`: the most a call asks for.
    count: u64,
    /// The `COUNT` of the next call: lowered while calls take more than half a slice.
    step: Cell<u64>,
    /// The cursor of the next call.
    next: Cell<u64>,
    /// The share of the table visited so far, from the cursor (see [`table_share`]).
    share: Cell<f64>,
    /// Keys reported visited so far.
    reported: Cell<u64>,
    /// Once the scan has ended: the keys it visited, exactly (see [`Slice::scan_by_command`]).
    total: Cell<Option<u64>>,
    /// Keys this sweep removed (deleted, or reclaimed as expired) so far.
    removed: Cell<u64>,
    /// Matched keys the last calls found expired, not yet counted.
    expired: Cell<u64>,
    /// The server refused the first call (`SCAN` renamed away): the module scan API visits.
    refused: Cell<bool>,
}

/// The share of a hash table a `SCAN` cursor has visited: the cursor's bits reversed, over
/// 2^64. The servers walk their tables in reverse binary order, so the reversed cursor counts
/// the buckets done. An estimate (a table that grows or shrinks mid-scan shifts it); exact
/// counts come at the end, from the database size.
fn table_share(cursor: u64) -> f64 {
    if cursor == 0 {
        return 1.0;
    }
    cursor.reverse_bits() as f64 / 18_446_744_073_709_551_616.0
}

impl Cursor {
    pub fn new(api: &Api) -> Cursor {
        // SAFETY: allocates a fresh cursor.
        Cursor(unsafe { (api.scan_cursor_create)() }, None)
    }

    /// A cursor that visits keys with `SCAN cursor MATCH pattern COUNT count`.
    pub fn by_command(pattern: &[u8], count: u64) -> Cursor {
        let count = count.clamp(sweep_core::sweep::MIN_SCAN_COUNT, 100_000);
        Cursor(
            ptr::null_mut(),
            Some(CommandScan {
                pattern: pattern.to_vec(),
                count,
                step: Cell::new(count),
                next: Cell::new(0),
                share: Cell::new(0.0),
                reported: Cell::new(0),
                total: Cell::new(None),
                removed: Cell::new(0),
                expired: Cell::new(0),
                refused: Cell::new(false),
            }),
        )
    }

    /// The cursor of a sweep of `first` and the `OR` patterns, by this server's mechanism, or
    /// by `SCAN` whatever the mechanism when the pattern is `pinned` to one cluster slot.
    pub fn for_sweep(api: &Api, first: &[u8], or: &[Vec<u8>], count: u64, pinned: bool) -> Cursor {
        match (api.mechanism.visit, pinned) {
            (Visit::ModuleScan, false) => Cursor::new(api),
            _ => {
                let mut cursor =
                    Cursor::by_command(&sweep_core::patterns::scan_match(first, or), count);
                // Should the server refuse `SCAN` (renamed away), the module scan API visits.
                // SAFETY: allocates a fresh cursor, destroyed on drop.
                cursor.0 = unsafe { (api.scan_cursor_create)() };
                cursor
            }
        }
    }

    /// Counts keys the sweep removed (for the final count of keys visited).
    fn removed(&self, n: u64) {
        if let Some(state) = &self.1 {
            state.removed.set(state.removed.get() + n);
        }
    }
}

impl Drop for Cursor {
    fn drop(&mut self) {
        if let Some(api) = api() {
            if !self.0.is_null() {
                // SAFETY: created by `Cursor::new`, destroyed once.
                unsafe { (api.scan_cursor_destroy)(self.0) };
            }
        }
    }
}

impl Slice<'_> {
    /// One `SCAN` call: the server skips the names its `MATCH` rules out without copying them;
    /// the sweep's own patterns decide on the names it returns. The keys visited are estimated
    /// from the cursor while the scan goes on, and made exact at its end: every key in the
    /// database now plus the ones this sweep removed.
    fn scan_by_command(
        &self,
        state: &CommandScan,
        pattern: &PatternSet,
        found: &mut VecDeque<KeyName>,
    ) -> Option<ScanStep> {
        let api = self.api;
        let cursor = state.next.get().to_string();
        let count = c_longlong::try_from(state.step.get()).unwrap_or(1000);
        let started = std::time::Instant::now();
        let expirations_before = expirations();
        // A key found expired under PERSISTENT had a TTL: never a candidate.
        let counts = self.filters.ttl != Some(Ttl::Persistent);
        SCAN_EXPIRED.set((pattern, counts, 0));
        // SAFETY: "bcbcl": a buffer and its length, a C string, a buffer and its length, a C
        // string, a long long; all live for the call. The reply is freed below.
        let reply = unsafe {
            (api.call)(
                self.ctx,
                c"SCAN".as_ptr(),
                c"bcbcl".as_ptr(),
                cursor.as_ptr(),
                cursor.len(),
                c"MATCH".as_ptr(),
                state.pattern.as_ptr(),
                state.pattern.len(),
                c"COUNT".as_ptr(),
                count,
            )
        };
        let spent = started.elapsed();
        let (_, _, matched_expired) = SCAN_EXPIRED.replace((ptr::null(), false, 0));
        state.expired.set(state.expired.get() + matched_expired);
        state
            .removed
            .set(state.removed.get() + expirations().saturating_sub(expirations_before));
        let done = ScanStep {
            visited: 0,
            more: false,
        };
        let mut names = 0u64;
        let mut next = None;
        // SAFETY: `reply` and its elements are live until it is freed; every element is
        // checked for NULL and read below the length the server reports.
        if !reply.is_null() {
            unsafe {
                if (api.call_reply_type)(reply) == raw::REDISMODULE_REPLY_ARRAY as c_int
                    && (api.call_reply_length)(reply) == 2
                {
                    next = api
                        .reply_text((api.call_reply_element)(reply, 0))
                        .and_then(|t| t.parse::<u64>().ok());
                    let list = (api.call_reply_element)(reply, 1);
                    if next.is_some() && !list.is_null() {
                        for i in 0..(api.call_reply_length)(list) {
                            let name = (api.call_reply_element)(list, i);
                            if name.is_null() {
                                continue;
                            }
                            let mut len = 0usize;
                            let p = (api.call_reply_string)(name, &mut len);
                            if p.is_null() {
                                continue;
                            }
                            names += 1;
                            let bytes = std::slice::from_raw_parts(p.cast::<u8>(), len);
                            if pattern.matches(bytes) {
                                let held = (api.create_string)(ptr::null_mut(), p, len);
                                if !held.is_null() {
                                    found.push_back(KeyName(held));
                                }
                            }
                        }
                    }
                }
                (api.free_call_reply)(reply);
            }
        }
        let Some(next) = next else {
            // Refused (the command renamed away): on the first call, the module scan API
            // visits instead; later (it cannot happen at run time), the sweep ends here.
            if state.reported.get() == 0 && state.next.get() == 0 && !self.cursor.0.is_null() {
                state.refused.set(true);
                return None;
            }
            return Some(done);
        };
        state.next.set(next);
        // Calls stay inside this slice, however short (a busy server, SPEC §10).
        state.step.set(sweep_core::sweep::next_scan_count(
            state.step.get(),
            state.count,
            spent,
            self.budget,
        ));
        let total = api.db_size(self.ctx) + state.removed.get();
        let reported = state.reported.get();
        let visited = if next == 0 {
            state.total.set(Some(total));
            total.saturating_sub(reported)
        } else {
            let share = table_share(next);
            let grown = share - state.share.get();
            state.share.set(share.max(state.share.get()));
            let estimate = if grown > 0.0 {
                (grown * total as f64) as u64
            } else {
                0
            };
            // Never past the keys there are before the end, never fewer than the names returned
            // (so a scan step, and the names it holds, stays about COUNT).
            estimate.min(total.saturating_sub(reported + 1)).max(names)
        };
        state.reported.set(reported + visited);
        Some(ScanStep {
            visited,
            more: next != 0,
        })
    }

    /// Deletes the names that passed every check with one `UNLINK` call: the server's own
    /// deletion, with its replication, notifications, `WATCH` and lazy free. Returns (deleted,
    /// expired): `UNLINK` counts the keys it deleted; a key it found expired is reclaimed as an
    /// expiration, which the `expired` notification counts. `None` when the server refuses the
    /// call (`UNLINK` renamed away): nothing was deleted.
    fn unlink_call(&mut self, names: &[KeyName]) -> Option<(u64, u64)> {
        if names.is_empty() {
            return Some((0, 0));
        }
        let api = self.api;
        let argv: Vec<Str> = names.iter().map(|k| k.0).collect();
        let expired_before = expirations();
        // SAFETY: format "v" takes an array of live strings and its length. Without "!", the
        // call is not replicated: the slice replicates its deletions as one UNLINK.
        let reply = unsafe {
            (api.call)(
                self.ctx,
                c"UNLINK".as_ptr(),
                c"v".as_ptr(),
                argv.as_ptr(),
                argv.len(),
            )
        };
        let expired = expirations().saturating_sub(expired_before);
        if reply.is_null() {
            return None;
        }
        // SAFETY: `reply` is live until freed, once.
        let deleted = unsafe {
            let deleted = ((api.call_reply_type)(reply) == raw::REDISMODULE_REPLY_INTEGER as c_int)
                .then(|| u64::try_from((api.call_reply_integer)(reply)).unwrap_or(0));
            (api.free_call_reply)(reply);
            deleted
        }?;
        Some((deleted, expired))
    }
}

/// An ACL user, looked up for one slice.
pub struct User {
    ptr: *mut raw::RedisModuleUser,
    acl: AclApi,
}

impl User {
    /// Whether the user may delete the key (a write permission on it).
    fn may_delete(&self, key: Str) -> bool {
        let flags = raw::REDISMODULE_CMD_KEY_DELETE as c_int;
        // SAFETY: `ptr` is a live user handle, `key` a live string.
        unsafe { (self.acl.check_key)(self.ptr, key, flags) == raw::REDISMODULE_OK as c_int }
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // SAFETY: obtained from `RedisModule_GetModuleUserFromUserName`, freed once.
        unsafe { (self.acl.free_user)(self.ptr) };
    }
}

/// What a key must be, besides matching, to be deleted; checked when the sweep reaches it.
#[derive(Debug, Clone, Default)]
pub struct Filters {
    /// A type name as `TYPE` gives it, lower case.
    pub key_type: Option<Vec<u8>>,
    /// Least idle time in milliseconds (`OBJECT IDLETIME` × 1000).
    pub idle_ms: Option<i64>,
    /// `PERSISTENT` / `VOLATILE`.
    pub ttl: Option<Ttl>,
    /// Least `MEMORY USAGE` in bytes.
    pub minsize: Option<u64>,
    /// Count what would be deleted; delete nothing.
    pub dryrun: bool,
}

impl Filters {
    fn any(&self) -> bool {
        self.key_type.is_some()
            || self.idle_ms.is_some()
            || self.ttl.is_some()
            || self.minsize.is_some()
            || self.dryrun
    }
}

/// The keyspace of one database, as seen from one slice's context.
pub struct Slice<'a> {
    pub api: &'a Api,
    pub ctx: Ctx,
    pub cursor: &'a Cursor,
    pub filters: &'a Filters,
    /// The caller's user, when its permissions are checked key by key.
    pub user: Option<&'a User>,
    /// Names deleted in this slice: replicated as one `UNLINK` when the slice ends.
    pub deleted: Vec<KeyName>,
    /// The slice's time budget: one call into the server (a `SCAN`, an `UNLINK`) takes a
    /// fraction of it, so that a short slice (a busy server, SPEC §10) stays short.
    pub budget: Duration,
}

struct ScanData<'a> {
    api: &'a Api,
    pattern: &'a PatternSet,
    found: &'a mut VecDeque<KeyName>,
    visited: u64,
}

extern "C" fn scan_callback(
    _ctx: Ctx,
    keyname: Str,
    _key: *mut raw::RedisModuleKey,
    privdata: *mut c_void,
) {
    // SAFETY: `privdata` is the `ScanData` that `Slice::scan` passes to this very scan call.
    let Some(data) = (unsafe { privdata.cast::<ScanData>().as_mut() }) else {
        return;
    };
    data.visited += 1;
    // SAFETY: `keyname` is live for the callback.
    let name = unsafe { data.api.bytes(keyname) };
    if data.pattern.matches(name) {
        // The server frees its own reference when the callback returns; keep one. No key is
        // deleted here: deleting inside the scan callback is a use-after-free.
        // SAFETY: `keyname` is live; a NULL context means a plain reference count.
        let held = unsafe {
            match data.api.hold_string {
                Some(hold) => hold(ptr::null_mut(), keyname),
                None => {
                    (data.api.retain_string)(ptr::null_mut(), keyname);
                    keyname
                }
            }
        };
        if !held.is_null() {
            data.found.push_back(KeyName(held));
        }
    }
}

impl Keyspace for Slice<'_> {
    type Name = KeyName;

    fn scan(&mut self, pattern: &PatternSet, found: &mut VecDeque<KeyName>) -> ScanStep {
        if let Some(state) = self.cursor.1.as_ref().filter(|s| !s.refused.get()) {
            if let Some(step) = self.scan_by_command(state, pattern, found) {
                return step;
            }
        }
        if self.cursor.0.is_null() {
            return ScanStep {
                visited: 0,
                more: false,
            };
        }
        let mut data = ScanData {
            api: self.api,
            pattern,
            found,
            visited: 0,
        };
        // SAFETY: the context has the sweep's database selected; the callback only reads the
        // name and retains it; `data` outlives the call.
        let more = unsafe {
            (self.api.scan)(
                self.ctx,
                self.cursor.0,
                Some(scan_callback),
                (&mut data as *mut ScanData).cast(),
            )
        };
        ScanStep {
            visited: data.visited,
            more: more != 0,
        }
    }

    fn delete(&mut self, name: KeyName) -> KeyOutcome {
        let outcome = match self.screen(name) {
            Screened::Left(outcome) => outcome,
            Screened::Passes(name) => self.delete_one(name),
        };
        if matches!(outcome, KeyOutcome::Deleted | KeyOutcome::Expired) {
            self.cursor.removed(1);
        }
        outcome
    }

    fn scanned_total(&self) -> Option<u64> {
        self.cursor.1.as_ref().and_then(|state| state.total.get())
    }

    fn scan_cost(&self) -> u64 {
        // A `SCAN` call visits up to COUNT keys: the slice reads the clock after each.
        match &self.cursor.1 {
            Some(state) if !state.refused.get() => sweep_core::sweep::OPS_PER_CLOCK_READ,
            _ => 1,
        }
    }

    fn take_expired(&mut self) -> u64 {
        self.cursor
            .1
            .as_ref()
            .map_or(0, |state| state.expired.replace(0))
    }

    fn batch_size(&self) -> usize {
        if self.batched() {
            sweep_core::sweep::delete_batch_for(self.budget)
        } else {
            1
        }
    }

    fn delete_batch(&mut self, names: Vec<KeyName>) -> Outcomes {
        let mut outcomes = Outcomes::default();
        if !self.batched() {
            for name in names {
                outcomes.add(self.delete(name));
            }
            return outcomes;
        }
        let mut passing = Vec::with_capacity(names.len());
        for name in names {
            match self.screen(name) {
                Screened::Left(outcome) => {
                    if outcome == KeyOutcome::Expired {
                        self.cursor.removed(1);
                    }
                    outcomes.add(outcome);
                }
                Screened::Passes(name) => passing.push(name),
            }
        }
        let tried = passing.len() as u64;
        let Some((deleted, expired)) = self.unlink_call(&passing) else {
            for name in passing {
                crate::jobs::expect_expiry();
                let outcome = self.delete_one(name);
                if matches!(outcome, KeyOutcome::Deleted | KeyOutcome::Expired) {
                    self.cursor.removed(1);
                }
                outcomes.add(outcome);
            }
            return outcomes;
        };
        if deleted > 0 {
            // Replicating a name that was not there is a no-op on the replica, as it was here.
            self.deleted.extend(passing);
        }
        let deleted = deleted.min(tried);
        let expired = expired.min(tried - deleted);
        self.cursor.removed(deleted + expired);
        outcomes.deleted += deleted;
        outcomes.expired += expired;
        outcomes.skipped += tried - deleted - expired;
        outcomes
    }
}

/// A key after the checks that come before its deletion.
enum Screened {
    /// Left alone (or found expired, gone, denied, or kept by `DRYRUN`).
    Left(KeyOutcome),
    /// Passes every check: to be deleted.
    Passes(KeyName),
}

impl Slice<'_> {
    /// Whether this slice deletes with one `UNLINK` call per batch: where the server was found
    /// cheaper that way, and outside cluster mode (where a call naming keys of several slots is
    /// refused).
    fn batched(&self) -> bool {
        self.api.mechanism.delete == Delete::UnlinkCall
            && self.api.flags(self.ctx) & raw::REDISMODULE_CTX_FLAGS_CLUSTER == 0
    }

    /// The checks before a deletion, cheapest first: the filters (on a key opened without
    /// touching it), the caller's permission, `DRYRUN`.
    fn screen(&mut self, name: KeyName) -> Screened {
        crate::jobs::expect_expiry();
        if self.filters.any() {
            match self.check(&name) {
                Check::Passes => {}
                Check::Fails => return Screened::Left(KeyOutcome::Filtered),
                // A key found expired had a TTL: under PERSISTENT it was never a candidate.
                Check::Missing if self.filters.ttl == Some(Ttl::Persistent) => {
                    return Screened::Left(KeyOutcome::Filtered)
                }
                Check::Missing => {
                    return Screened::Left(if crate::jobs::expired_seen() {
                        KeyOutcome::Expired
                    } else {
                        KeyOutcome::Gone
                    })
                }
            }
        }
        if self.user.is_some_and(|u| !u.may_delete(name.0)) {
            // Checked before the key is opened for writing: a key left alone is not touched.
            return Screened::Left(KeyOutcome::Denied);
        }
        if self.filters.dryrun {
            return Screened::Left(KeyOutcome::Kept);
        }
        Screened::Passes(name)
    }

    /// Deletes one key that passed the checks: open, unlink, close, notify.
    fn delete_one(&mut self, name: KeyName) -> KeyOutcome {
        let api = self.api;
        // SAFETY: `ctx` is the slice's context with the sweep's database selected; `name` is
        // a live string we hold a reference to. Opening for write expires the key if it is
        // due, which the server propagates and notifies itself.
        let key = unsafe { (api.open_key)(self.ctx, name.0, raw::REDISMODULE_WRITE as c_int) };
        if key.is_null() {
            return KeyOutcome::Gone;
        }
        // SAFETY: `key` is the handle just opened; it is closed exactly once below.
        let empty = unsafe { (api.key_type)(key) } == raw::REDISMODULE_KEYTYPE_EMPTY as c_int;
        if empty {
            // SAFETY: as above.
            unsafe { (api.close_key)(key) };
            return if crate::jobs::expired_seen() {
                KeyOutcome::Expired
            } else {
                KeyOutcome::Gone
            };
        }
        // SAFETY: as above. Unlinking takes the lazy-free path of `UNLINK`; closing a key
        // opened for write signals `WATCH` and client-side caching, as `UNLINK` does.
        unsafe {
            (api.unlink_key)(key);
            (api.close_key)(key);
            (api.notify)(
                self.ctx,
                raw::REDISMODULE_NOTIFY_GENERIC,
                c"del".as_ptr(),
                name.0,
            );
        }
        self.deleted.push(name);
        KeyOutcome::Deleted
    }
}

/// The result of checking a key against the filters.
enum Check {
    Passes,
    Fails,
    Missing,
}

/// `TYPE`'s name for a key type, where the module API tells it.
fn core_type_name(key_type: c_int) -> Option<&'static [u8]> {
    let t = key_type as isize;
    Some(match t {
        raw::REDISMODULE_KEYTYPE_STRING => b"string",
        raw::REDISMODULE_KEYTYPE_LIST => b"list",
        raw::REDISMODULE_KEYTYPE_HASH => b"hash",
        raw::REDISMODULE_KEYTYPE_SET => b"set",
        raw::REDISMODULE_KEYTYPE_ZSET => b"zset",
        raw::REDISMODULE_KEYTYPE_STREAM => b"stream",
        _ => return None,
    })
}

impl Slice<'_> {
    /// Checks the filters on a key opened for reading without touching its LRU/LFU data, so a
    /// key that stays is left exactly as it was (no `WATCH` signal, no access recorded).
    /// Cheapest first (SPEC §9): the type the key handle tells, TTL, idle time, then what needs
    /// a command (a module type's name, `MEMORY USAGE`).
    fn check(&self, name: &KeyName) -> Check {
        let api = self.api;
        let filters = self.filters;
        let mode = raw::REDISMODULE_READ | raw::REDISMODULE_OPEN_KEY_NOTOUCH;
        // SAFETY: `ctx` has the sweep's database selected; `name` is live. Opening for read
        // reclaims the key if it has expired, as any read does.
        let key = unsafe { (api.open_key)(self.ctx, name.0, mode as c_int) };
        if key.is_null() {
            return Check::Missing;
        }
        // SAFETY: `key` is the live handle opened above; every path below closes it once.
        let key_type = unsafe { (api.key_type)(key) };
        if key_type == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
            // SAFETY: as above.
            unsafe { (api.close_key)(key) };
            return Check::Missing;
        }
        let core_type = core_type_name(key_type);
        let passes = self.check_open(key, core_type);
        // The string length, for the MINSIZE shortcut, while the key is open.
        let string_len = (passes && core_type == Some(b"string") && filters.minsize.is_some())
            // SAFETY: as above; reading the length does not touch the key.
            .then(|| unsafe { (api.value_length)(key) });
        // SAFETY: as above.
        unsafe { (api.close_key)(key) };
        if !passes {
            return Check::Fails;
        }
        if let (Some(wanted), None) = (&filters.key_type, core_type) {
            let actual = api.type_name(self.ctx, name.0);
            if !actual.is_some_and(|a| a.eq_ignore_ascii_case(wanted)) {
                return Check::Fails;
            }
        }
        if let Some(min) = filters.minsize {
            let quick = string_len.and_then(|len| {
                let key_len = name.bytes(api).len();
                minsize::string_verdict(len as u64, key_len as u64, min)
            });
            let passes = match quick {
                Some(verdict) => verdict,
                // A key the server will not measure (a cluster redirection mid-migration) is
                // left alone.
                None => api
                    .memory_usage(self.ctx, name.0)
                    .is_some_and(|usage| u64::try_from(usage).is_ok_and(|u| u >= min)),
            };
            if !passes {
                return Check::Fails;
            }
        }
        Check::Passes
    }

    /// The filters that the open key handle answers: `TYPE` of a core type, TTL, idle time.
    fn check_open(&self, key: *mut raw::RedisModuleKey, core_type: Option<&[u8]>) -> bool {
        let (api, filters) = (self.api, self.filters);
        if let (Some(wanted), Some(actual)) = (&filters.key_type, core_type) {
            if !actual.eq_ignore_ascii_case(wanted) {
                return false;
            }
        }
        if let Some(ttl) = filters.ttl {
            // SAFETY: `key` is a live handle; reading the TTL does not touch the key.
            let expire = unsafe { (api.get_expire)(key) };
            let volatile = expire != raw::mstime_t::from(raw::REDISMODULE_NO_EXPIRE);
            if volatile != (ttl == Ttl::Volatile) {
                return false;
            }
        }
        if let Some(min) = filters.idle_ms {
            let mut idle: raw::mstime_t = -1;
            // SAFETY: as above; `idle` is a live out-parameter.
            unsafe { (api.get_lru)(key, &mut idle) };
            // -1: the server tracks LFU, not idle time (the policy changed mid-sweep).
            if !(idle >= 0 && idle / 1000 >= min / 1000) {
                return false;
            }
        }
        true
    }

    /// Propagates this slice's deletions to replicas and the AOF as one `UNLINK`, in the
    /// execution unit of the slice.
    pub fn replicate(&mut self) {
        if self.deleted.is_empty() {
            return;
        }
        let argv: Vec<Str> = self.deleted.iter().map(|k| k.0).collect();
        // SAFETY: format "v" takes an array of strings and its length; all are live.
        unsafe {
            (self.api.replicate)(
                self.ctx,
                c"UNLINK".as_ptr(),
                c"v".as_ptr(),
                argv.as_ptr(),
                argv.len(),
            );
        }
        self.deleted.clear();
    }
}

/// The event-loop driver (Redis 7.0+): an eventfd that stays readable while sweeps are
/// pending keeps the event loop from sleeping, and each loop iteration runs one slice in the
/// before-sleep hook.
pub struct Wakeup {
    fd: c_int,
    readable: bool,
}

extern "C" fn on_wakeup_readable(_fd: c_int, _data: *mut c_void, _mask: c_int) {
    // Nothing to read: the fd must stay readable while work is pending.
}

impl Wakeup {
    pub fn new(api: &Api) -> Result<Wakeup, String> {
        let Some(el) = api.event_loop else {
            return Err("this server has no RedisModule_EventLoopAdd".into());
        };
        // SAFETY: plain syscall.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(format!(
                "eventfd failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        // SAFETY: registers our own fd with a callback that never unwinds.
        let ok = unsafe {
            (el.add)(
                fd,
                raw::REDISMODULE_EVENTLOOP_READABLE as c_int,
                Some(on_wakeup_readable),
                ptr::null_mut(),
            )
        };
        if ok != raw::REDISMODULE_OK as c_int {
            // SAFETY: our own fd.
            unsafe { libc::close(fd) };
            return Err("RedisModule_EventLoopAdd failed".into());
        }
        Ok(Wakeup {
            fd,
            readable: false,
        })
    }

    /// Keeps the event loop spinning (work is pending) or lets it sleep.
    pub fn set(&mut self, pending: bool) {
        if pending == self.readable {
            return;
        }
        if pending {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a live u64 to our own eventfd.
            unsafe { libc::write(self.fd, (&one as *const u64).cast(), 8) };
        } else {
            let mut buf: u64 = 0;
            // SAFETY: reads 8 bytes into a live u64 from our own non-blocking eventfd.
            unsafe { libc::read(self.fd, (&mut buf as *mut u64).cast(), 8) };
        }
        self.readable = pending;
    }

    /// Unregisters and closes the fd (module unload).
    pub fn close(self, api: &Api) {
        if let Some(el) = api.event_loop {
            // SAFETY: the fd was registered in `new`.
            unsafe { (el.del)(self.fd, raw::REDISMODULE_EVENTLOOP_READABLE as c_int) };
        }
        // SAFETY: our own fd, closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// Subscribes to the server events a sweep must react to, and to expirations (to tell a key
/// found expired from one deleted by someone else).
pub fn subscribe(ctx: Ctx, api: &Api) -> Result<(), String> {
    // SAFETY: as in `need!`.
    let Some(sub) = (unsafe { raw::RedisModule_SubscribeToServerEvent }) else {
        return Err("this server has no RedisModule_SubscribeToServerEvent".into());
    };
    let mut events = vec![
        raw::REDISMODULE_EVENT_FLUSHDB,
        raw::REDISMODULE_EVENT_SWAPDB,
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
    ];
    if api.has_event_loop() {
        events.push(raw::REDISMODULE_EVENT_EVENTLOOP);
    }
    for id in events {
        let event = raw::RedisModuleEvent { id, dataver: 1 };
        // SAFETY: `ctx` is the load context; the callback never unwinds.
        if unsafe { sub(ctx, event, Some(on_server_event)) } != raw::REDISMODULE_OK as c_int {
            return Err(format!("cannot subscribe to server event {id}"));
        }
    }
    if api.has_event_loop() {
        // SAFETY: as in `need!`.
        let Some(filter) = (unsafe { raw::RedisModule_RegisterCommandFilter }) else {
            return Err("this server has no RedisModule_RegisterCommandFilter".into());
        };
        // NOSELF: the module's own calls (CONFIG GET, TYPE) are not client traffic.
        let flags = raw::REDISMODULE_CMDFILTER_NOSELF as c_int;
        // SAFETY: `ctx` is the load context; the callback never unwinds and does not touch
        // the command.
        if unsafe { filter(ctx, Some(on_command), flags) }.is_null() {
            return Err("cannot register the command filter".into());
        }
    }
    // SAFETY: as in `need!`.
    let Some(keyspace) = (unsafe { raw::RedisModule_SubscribeToKeyspaceEvents }) else {
        return Err("this server has no RedisModule_SubscribeToKeyspaceEvents".into());
    };
    // SAFETY: `ctx` is the load context; the callback never unwinds.
    if unsafe { keyspace(ctx, raw::REDISMODULE_NOTIFY_EXPIRED, Some(on_expired)) }
        != raw::REDISMODULE_OK as c_int
    {
        return Err("cannot subscribe to expired events".into());
    }
    Ok(())
}

/// What a server event means for the sweeps.
pub enum ServerEvent {
    /// Slices may run now (the event loop is about to poll).
    Tick,
    /// Databases were emptied: `None` for all of them.
    Flushed(Option<i32>),
    /// Two databases were swapped.
    Swapped(i32, i32),
    /// This node's role changed (it may have become a replica).
    RoleChanged,
}

extern "C" fn on_server_event(ctx: Ctx, eid: raw::RedisModuleEvent, sub: u64, data: *mut c_void) {
    let event = match eid.id {
        raw::REDISMODULE_EVENT_EVENTLOOP
            if sub == raw::REDISMODULE_SUBEVENT_EVENTLOOP_BEFORE_SLEEP =>
        {
            ServerEvent::Tick
        }
        raw::REDISMODULE_EVENT_FLUSHDB if sub == raw::REDISMODULE_SUBEVENT_FLUSHDB_START => {
            // SAFETY: for this event the server passes a `RedisModuleFlushInfo`.
            let info = unsafe { data.cast::<raw::RedisModuleFlushInfo>().as_ref() };
            match info {
                Some(i) if i.dbnum >= 0 => ServerEvent::Flushed(Some(i.dbnum)),
                _ => ServerEvent::Flushed(None),
            }
        }
        raw::REDISMODULE_EVENT_SWAPDB => {
            // SAFETY: for this event the server passes a `RedisModuleSwapDbInfo`.
            match unsafe { data.cast::<raw::RedisModuleSwapDbInfo>().as_ref() } {
                Some(i) => ServerEvent::Swapped(i.dbnum_first, i.dbnum_second),
                None => ServerEvent::Flushed(None),
            }
        }
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED => ServerEvent::RoleChanged,
        _ => return,
    };
    crate::jobs::server_event(ctx, event);
}

/// The CPU time the calling thread (the server's main thread) has used, for the pacer's
/// measure of the clients' work: unlike the wall clock it does not count the event loop's sleep
/// or the time the OS runs something else. Zero if the clock cannot be read.
pub fn thread_cpu_time() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: plain syscall (or vDSO call) writing into a live timespec.
    let ok = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) } == 0;
    if !ok {
        return std::time::Duration::ZERO;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let nanos = u32::try_from(ts.tv_nsec).unwrap_or(0).min(999_999_999);
    std::time::Duration::new(secs, nanos)
}

/// Commands the server has run since it loaded the module (a command filter sees each one).
static COMMANDS_SEEN: AtomicU64 = AtomicU64::new(0);

pub fn commands_seen() -> u64 {
    COMMANDS_SEEN.load(Ordering::Relaxed)
}

extern "C" fn on_command(_filter: *mut raw::RedisModuleCommandFilterCtx) {
    COMMANDS_SEEN.fetch_add(1, Ordering::Relaxed);
}

/// Expirations the server has reported since the module loaded.
static EXPIRATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// While a `SCAN` call of a sweep runs: its patterns and filters, and how many keys they
    /// take that the call found expired (the command reclaims those as expirations).
    static SCAN_EXPIRED: Cell<(*const PatternSet, bool, u64)> =
        const { Cell::new((ptr::null(), false, 0)) };
}

fn expirations() -> u64 {
    EXPIRATIONS.load(Ordering::Relaxed)
}

extern "C" fn on_expired(_ctx: Ctx, _type: c_int, _event: *const c_char, _key: Str) -> c_int {
    EXPIRATIONS.fetch_add(1, Ordering::Relaxed);
    let (patterns, counts, n) = SCAN_EXPIRED.get();
    // SAFETY: set only for the duration of one `SCAN` call, to a `PatternSet` that outlives it;
    // the server calls this on the main thread, inside that call.
    if let (Some(patterns), true) = (unsafe { patterns.as_ref() }, counts) {
        if let Some(api) = api() {
            // SAFETY: `_key` is live for the callback.
            if patterns.matches(unsafe { api.bytes(_key) }) {
                SCAN_EXPIRED.set((patterns, counts, n + 1));
            }
        }
    }
    crate::jobs::expiry_seen();
    raw::REDISMODULE_OK as c_int
}

/// A command's entry point, as the server calls it.
pub type CommandFn = extern "C" fn(Ctx, *mut Str, c_int) -> c_int;

/// Fills the module API table and names the module: the first thing `RedisModule_OnLoad` does.
///
/// # Safety
/// `ctx` must be the load context the server passed to `RedisModule_OnLoad`.
pub unsafe fn init_module(ctx: Ctx, name: &CStr, version: c_int) -> bool {
    // SAFETY: the caller passes the load context; `name` is NUL-terminated and outlives the call
    // (the server copies it).
    let status = unsafe {
        raw::Export_RedisModule_Init(
            ctx,
            name.as_ptr(),
            version,
            raw::REDISMODULE_APIVER_1 as c_int,
        )
    };
    status == raw::REDISMODULE_OK as c_int
}

/// Registers one command (no key arguments: the command finds its keys itself).
pub fn create_command(
    ctx: Ctx,
    name: &CStr,
    handler: CommandFn,
    flags: &CStr,
) -> Result<(), String> {
    // SAFETY: as in `need!`; the API table was filled by `init_module`.
    let Some(create) = (unsafe { raw::RedisModule_CreateCommand }) else {
        return Err("this server has no RedisModule_CreateCommand".into());
    };
    // SAFETY: `ctx` is the load context; both strings are NUL-terminated and the server copies
    // them; `handler` never unwinds.
    let status = unsafe { create(ctx, name.as_ptr(), Some(handler), flags.as_ptr(), 0, 0, 0) };
    if status != raw::REDISMODULE_OK as c_int {
        return Err(format!(
            "cannot create the command {}",
            name.to_string_lossy()
        ));
    }
    Ok(())
}
