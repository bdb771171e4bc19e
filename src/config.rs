//! Module configs (SPEC §4): `sweep.count`, `sweep.batch`, `sweep.slice-us`, `sweep.max-jobs`,
//! `sweep.history`, `sweep.busy-share`, `sweep.cluster-timeout`.
//!
//! | config           | default | range              |
//! |------------------|---------|--------------------|
//! | `sweep.count`    | 1000    | 1 ..= 1 000 000    |
//! | `sweep.batch`    | 500     | 1 ..= 1 000 000    |
//! | `sweep.slice-us` | 1000    | 50 ..= 1 000 000   |
//! | `sweep.max-jobs` | 16      | 1 ..= 1024         |
//! | `sweep.history`  | 64      | 0 ..= 10 000       |
//! | `sweep.busy-share` | 20    | 1 ..= 100          |
//! | `sweep.cluster-timeout` | 10000 | 100 ..= 3 600 000 (ms) |
//!
//! `sweep.slice-us` is bounded below by 50 µs, under which a slice is mostly its own overhead
//! (reading the clock, re-opening the scan), and above by one second, past which a slice is a
//! stall every client notices: the point of the module is never to block the server.
//!
//! The values live in atomics that [`current`] reads. They are set, in this order (later wins):
//! 1. the defaults;
//! 2. the words after the module path on the `loadmodule` line or in `MODULE LOAD`
//!    (`sweep.count 2000` or `count 2000`, names case-insensitive): the only way on Redis 6.x;
//! 3. on Redis 7.0+ (where the server has module configs), `sweep.count 2000` lines in
//!    `redis.conf`, `--sweep.count 2000` on the command line and `MODULE LOADEX … CONFIG`;
//! 4. `CONFIG SET` at run time.
//!
//! The server applies 3 by calling `RedisModule_LoadConfigs`, which sets every config that was
//! not given there to its registered default: so the values of 2 are registered as the defaults.

use std::ffi::{c_char, c_int, c_longlong, c_void, CStr};
use std::sync::atomic::{AtomicU64, Ordering};

use redis_module::raw;
use sweep_core::args::parse_i64;

/// The values in force.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    pub count: u64,
    pub batch: u64,
    pub slice_us: u64,
    pub max_jobs: u64,
    pub history: u64,
    pub busy_share: u64,
    pub cluster_timeout_ms: u64,
}

pub const DEFAULTS: Settings = Settings {
    count: 1000,
    batch: 500,
    slice_us: 1000,
    max_jobs: 16,
    history: 64,
    busy_share: 20,
    cluster_timeout_ms: 10_000,
};

/// The server prefixes every config of the module with its name and a dot.
const PREFIX: &str = "sweep.";

static COUNT: AtomicU64 = AtomicU64::new(DEFAULTS.count);
static BATCH: AtomicU64 = AtomicU64::new(DEFAULTS.batch);
static SLICE_US: AtomicU64 = AtomicU64::new(DEFAULTS.slice_us);
static MAX_JOBS: AtomicU64 = AtomicU64::new(DEFAULTS.max_jobs);
static HISTORY: AtomicU64 = AtomicU64::new(DEFAULTS.history);
static BUSY_SHARE: AtomicU64 = AtomicU64::new(DEFAULTS.busy_share);
static CLUSTER_TIMEOUT: AtomicU64 = AtomicU64::new(DEFAULTS.cluster_timeout_ms);

/// One config: its name without the `sweep.` prefix, its bounds and where its value lives.
struct Spec {
    name: &'static CStr,
    default: u64,
    min: u64,
    max: u64,
    value: &'static AtomicU64,
}

impl Spec {
    fn name(&self) -> &'static str {
        self.name.to_str().unwrap_or("?")
    }

    fn in_range(&self, v: i64) -> Option<u64> {
        u64::try_from(v)
            .ok()
            .filter(|v| (self.min..=self.max).contains(v))
    }

    fn range_error(&self, shown: &str) -> String {
        format!(
            "{PREFIX}{} must be an integer from {} to {}, not '{shown}'",
            self.name(),
            self.min,
            self.max
        )
    }
}

/// Every config, in the order `CONFIG GET sweep.*` lists them on the servers that keep the order.
/// The index in this array is the `privdata` the server hands back to the callbacks.
static SPECS: [Spec; 7] = [
    Spec {
        name: c"count",
        default: DEFAULTS.count,
        min: 1,
        max: 1_000_000,
        value: &COUNT,
    },
    Spec {
        name: c"batch",
        default: DEFAULTS.batch,
        min: 1,
        max: 1_000_000,
        value: &BATCH,
    },
    Spec {
        name: c"slice-us",
        default: DEFAULTS.slice_us,
        min: 50,
        max: 1_000_000,
        value: &SLICE_US,
    },
    Spec {
        name: c"max-jobs",
        default: DEFAULTS.max_jobs,
        min: 1,
        max: 1024,
        value: &MAX_JOBS,
    },
    Spec {
        name: c"history",
        default: DEFAULTS.history,
        min: 0,
        max: 10_000,
        value: &HISTORY,
    },
    Spec {
        name: c"busy-share",
        default: DEFAULTS.busy_share,
        min: 1,
        max: 100,
        value: &BUSY_SHARE,
    },
    // SPEC §6: how long a cluster sweep waits for news from a primary before giving up on it.
    Spec {
        name: c"cluster-timeout",
        default: DEFAULTS.cluster_timeout_ms,
        min: 100,
        max: 3_600_000,
        value: &CLUSTER_TIMEOUT,
    },
];

/// The values in force now.
pub fn current() -> Settings {
    Settings {
        count: COUNT.load(Ordering::Relaxed),
        batch: BATCH.load(Ordering::Relaxed),
        slice_us: SLICE_US.load(Ordering::Relaxed),
        max_jobs: MAX_JOBS.load(Ordering::Relaxed),
        history: HISTORY.load(Ordering::Relaxed),
        busy_share: BUSY_SHARE.load(Ordering::Relaxed),
        cluster_timeout_ms: CLUSTER_TIMEOUT.load(Ordering::Relaxed),
    }
}

/// Registers the configs at load time. `args` are the words after the module path on the
/// `loadmodule` line.
///
/// An unknown name, a missing value or a value that is not an integer in range makes this
/// return an error (and the module refuse to load), as does a bad `sweep.*` value that the
/// server passes in from its configuration or from `MODULE LOADEX`.
pub fn register(ctx: *mut raw::RedisModuleCtx, args: &[&[u8]]) -> Result<(), String> {
    let values = parse_module_args(args)?;
    // Every value is stored, not only the ones given: the library may stay mapped across a
    // MODULE UNLOAD and a later MODULE LOAD, which must not inherit the old values.
    for (spec, value) in SPECS.iter().zip(values) {
        spec.value.store(value, Ordering::Relaxed);
    }

    // SAFETY: reading a function pointer the server filled in before `RedisModule_OnLoad`;
    // nothing writes it afterwards.
    let (Some(register_numeric), Some(load_configs)) = (unsafe {
        (
            raw::RedisModule_RegisterNumericConfig,
            raw::RedisModule_LoadConfigs,
        )
    }) else {
        // Redis 6.x: no module configs; the module arguments above are the only way.
        return Ok(());
    };

    for (index, (spec, value)) in SPECS.iter().zip(values).enumerate() {
        let default = c_longlong::try_from(value).map_err(|_| spec.range_error("?"))?;
        let min = c_longlong::try_from(spec.min).map_err(|_| spec.range_error("?"))?;
        let max = c_longlong::try_from(spec.max).map_err(|_| spec.range_error("?"))?;
        // SAFETY: `ctx` is the context of `RedisModule_OnLoad`, where registering is allowed;
        // the name is a 'static C string (the server copies it anyway); the callbacks are
        // `extern "C"` functions that never unwind; privdata is an index, never dereferenced.
        let status = unsafe {
            register_numeric(
                ctx,
                spec.name.as_ptr(),
                default,
                raw::REDISMODULE_CONFIG_DEFAULT,
                min,
                max,
                Some(get_numeric),
                Some(set_numeric),
                None,
                std::ptr::without_provenance_mut(index),
            )
        };
        if status != raw::REDISMODULE_OK as c_int {
            return Err(format!(
                "the server refused to register the config {PREFIX}{}",
                spec.name()
            ));
        }
    }

    // SAFETY: `ctx` is the context of `RedisModule_OnLoad`, after every config is registered,
    // which is where the server requires this call.
    let status = unsafe { load_configs(ctx) };
    if status != raw::REDISMODULE_OK as c_int {
        return Err(format!(
            "a {PREFIX}* value in the server configuration or in MODULE LOADEX is invalid \
             (the server names it in the line above)"
        ));
    }
    Ok(())
}

/// The value of every config after the module arguments: pairs of a name (`sweep.count` or
/// `count`, any case) and a strict integer. A name given twice takes its last value, as a
/// directive repeated in `redis.conf` does.
fn parse_module_args(args: &[&[u8]]) -> Result<[u64; SPECS.len()], String> {
    let mut values = SPECS.each_ref().map(|spec| spec.default);
    let mut words = args.iter();
    while let Some(&name) = words.next() {
        let shown_name = String::from_utf8_lossy(name);
        let bare = strip_prefix_ignore_case(name, PREFIX.as_bytes());
        let Some((spec, slot)) = SPECS
            .iter()
            .zip(values.iter_mut())
            .find(|(spec, _)| bare.eq_ignore_ascii_case(spec.name.to_bytes()))
        else {
            return Err(format!(
                "unknown module argument '{shown_name}': expected pairs of a config name \
                 and a value, the names being {}",
                SPECS
                    .iter()
                    .map(|s| format!("{PREFIX}{}", s.name()))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        };
        let Some(&value) = words.next() else {
            return Err(format!(
                "module argument '{shown_name}' has no value: give {PREFIX}{} a value from \
                 {} to {}",
                spec.name(),
                spec.min,
                spec.max
            ));
        };
        *slot = parse_i64(value)
            .and_then(|v| spec.in_range(v))
            .ok_or_else(|| spec.range_error(&String::from_utf8_lossy(value)))?;
    }
    Ok(values)
}

fn strip_prefix_ignore_case<'a>(word: &'a [u8], prefix: &[u8]) -> &'a [u8] {
    match word.split_at_checked(prefix.len()) {
        Some((head, rest)) if head.eq_ignore_ascii_case(prefix) => rest,
        _ => word,
    }
}

/// The config whose index the server hands back as `privdata`.
fn spec_of(privdata: *mut c_void) -> Option<&'static Spec> {
    SPECS.get(privdata.addr())
}

/// Getter the server calls for `CONFIG GET` and `CONFIG REWRITE`.
extern "C" fn get_numeric(_name: *const c_char, privdata: *mut c_void) -> c_longlong {
    spec_of(privdata)
        .map(|spec| spec.value.load(Ordering::Relaxed))
        .and_then(|v| c_longlong::try_from(v).ok())
        .unwrap_or(0)
}

/// Setter the server calls for `CONFIG SET`, config-file lines and `MODULE LOADEX … CONFIG`.
/// The server has already checked the range it was given at registration; this checks again so
/// that no value outside it can ever be stored.
extern "C" fn set_numeric(
    _name: *const c_char,
    val: c_longlong,
    privdata: *mut c_void,
    err: *mut *mut raw::RedisModuleString,
) -> c_int {
    let Some(spec) = spec_of(privdata) else {
        set_error(err, "unknown sweep config");
        return raw::REDISMODULE_ERR as c_int;
    };
    match spec.in_range(val) {
        Some(v) => {
            spec.value.store(v, Ordering::Relaxed);
            raw::REDISMODULE_OK as c_int
        }
        None => {
            set_error(err, &spec.range_error(&val.to_string()));
            raw::REDISMODULE_ERR as c_int
        }
    }
}

/// Hands an error message to the server through a setter's `err`. The server frees the string
/// after the call, so it is created without a context (no automatic memory management).
fn set_error(err: *mut *mut raw::RedisModuleString, message: &str) {
    if err.is_null() {
        return;
    }
    // SAFETY: reading a function pointer the server filled in at load time.
    let Some(create_string) = (unsafe { raw::RedisModule_CreateString }) else {
        return;
    };
    // SAFETY: a NULL context is allowed and means the caller owns the string; the pointer and
    // length describe `message`, which outlives the call (the server copies the bytes).
    let s = unsafe {
        create_string(
            std::ptr::null_mut(),
            message.as_ptr().cast::<c_char>(),
            message.len(),
        )
    };
    // SAFETY: `err` is non-null and points to the server's `RedisModuleString *` slot for this
    // call, which it reads (and frees) after the setter returns.
    unsafe { *err = s };
}
