//! The sweeps (jobs): starting them, the driver that gives each of them slices of main-thread
//! time, their status, cancellation, history and totals.
//!
//! Everything here runs on the server's main thread: commands, event-loop hooks, timers and
//! server events. State lives in thread-locals. Server callbacks (a disconnect, a flush) turn
//! into a [`Signal`] that marks the running jobs at once, or, when it arrives while the registry
//! is in use, is queued for the driver to apply before its next slice.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::ffi::c_void;
use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use redis_module::raw;
use sweep_core::args::{printable, ClearArgs};
use sweep_core::error::SweepError;
use sweep_core::pace::{Pacer, Turn};
use sweep_core::patterns::PatternSet;
use sweep_core::sweep::{Counts, Limits, SliceEnd, Sweep};

use crate::config;
use crate::server::{
    api, Api, Blocked, Cursor, Filters, KeyName, Reply, ServerEvent, Slice, Value, Wakeup,
};

type Ctx = *mut raw::RedisModuleCtx;

/// Why a sweep ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// Every matching key was reached (or `LIMIT` was).
    Done,
    /// Its client went away, or `SWEEP.CANCEL`.
    Cancelled,
    /// The server changed under it (flush, swap, role change).
    Aborted(String),
}

impl Ending {
    fn state(&self) -> &'static str {
        match self {
            Ending::Done => "done",
            Ending::Cancelled => "cancelled",
            Ending::Aborted(_) => "aborted",
        }
    }
}

/// Something that happened that may end running sweeps.
enum Signal {
    Disconnected(usize),
    Flushed(Option<i32>),
    Swapped(i32, i32),
    RoleChanged,
}

struct Job {
    id: u64,
    db: i32,
    pattern: Vec<u8>,
    /// `OR` and `EXCEPT` patterns, as given.
    or: Vec<Vec<u8>>,
    except: Vec<Vec<u8>>,
    sweep: Sweep<KeyName>,
    filters: Filters,
    cursor: Cursor,
    /// The blocked caller; `None` for `ASYNC` jobs.
    client: Option<Blocked>,
    /// The caller's ACL user, looked up again in every slice (it may change or go). `None`
    /// where the server has no per-key checks (the caller may write every key then).
    user: Option<Vec<u8>>,
    started: Instant,
    /// Keys in the database when the sweep started, for `progress`.
    db_size: u64,
    ending: Option<Ending>,
    /// For a share of a cluster sweep (SPEC §6): the coordinator's `host:port`.
    coordinator: Option<String>,
}

/// What `SWEEP.STATUS` shows of a job, running or finished.
#[derive(Clone)]
struct Status {
    id: u64,
    state: &'static str,
    pattern: Vec<u8>,
    or: Vec<Vec<u8>>,
    except: Vec<Vec<u8>>,
    db: i32,
    progress: f64,
    counts: Counts,
    elapsed_ms: u64,
    coordinator: Option<String>,
    /// Why an aborted job ended.
    reason: Option<String>,
}

impl Status {
    fn of(job: &Job) -> Status {
        let counts = job.sweep.counts();
        let state = job.ending.as_ref().map_or("running", Ending::state);
        let progress = if job.sweep.is_finished() {
            1.0
        } else if job.db_size == 0 {
            0.0
        } else {
            // Four decimals: an estimate, not a measurement.
            ((counts.scanned as f64 / job.db_size as f64).min(1.0) * 1e4).round() / 1e4
        };
        Status {
            id: job.id,
            state,
            pattern: job.pattern.clone(),
            or: job.or.clone(),
            except: job.except.clone(),
            db: job.db,
            progress,
            counts,
            elapsed_ms: millis(job.started.elapsed()),
            coordinator: job.coordinator.clone(),
            reason: match &job.ending {
                Some(Ending::Aborted(why)) => Some(why.clone()),
                _ => None,
            },
        }
    }

    /// The fields of a job (SPEC §3): its identity, then the counts of §2.
    fn fields(&self) -> Vec<(&'static str, Value)> {
        let mut fields = vec![
            ("id", Value::Int(int(self.id))),
            ("state", Value::Bytes(self.state.as_bytes().to_vec())),
            ("pattern", Value::Bytes(self.pattern.clone())),
            ("or", Value::Strings(self.or.clone())),
            ("except", Value::Strings(self.except.clone())),
            ("db", Value::Int(i64::from(self.db))),
            ("progress", Value::Double(self.progress)),
        ];
        fields.extend(counts_fields(&self.counts, self.elapsed_ms));
        if let Some(addr) = &self.coordinator {
            fields.push(("coordinator", Value::Bytes(addr.as_bytes().to_vec())));
        }
        fields
    }
}

fn counts_fields(counts: &Counts, elapsed_ms: u64) -> Vec<(&'static str, Value)> {
    counts
        .fields(elapsed_ms)
        .iter()
        .map(|&(name, value)| (name, Value::Int(value)))
        .collect()
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Totals since the module loaded, for `INFO sweep`.
#[derive(Default)]
struct Totals {
    finished: u64,
    scanned: u64,
    deleted: u64,
    slices: u64,
    slice_max_us: u64,
    /// Main-thread time spent in slices, and the part of it shared with active clients.
    busy_us: u64,
    busy_shared_us: u64,
    /// Loop iterations with sweeps pending that were left to the clients.
    turns_waited: u64,
}

enum Driver {
    /// Redis 7.0+: slices run in the before-sleep hook; the eventfd keeps the loop awake.
    EventLoop {
        wakeup: Wakeup,
        /// While the pacer makes the sweeps wait, the loop may sleep: this timer (the id of the
        /// pending one) wakes it in case no client does.
        nap: Option<u64>,
    },
}

struct Registry {
    jobs: Vec<Job>,
    /// Finished jobs, newest last, at most `sweep.history`.
    history: VecDeque<Status>,
    next_id: u64,
    turn: usize,
    driver: Option<Driver>,
    /// When the next slice may run (`sweep.busy-share`): all sweeps share it.
    pacer: Pacer,
    totals: Totals,
}

impl Registry {
    fn new() -> Registry {
        Registry {
            jobs: Vec::new(),
            history: VecDeque::new(),
            next_id: 1,
            turn: 0,
            driver: None,
            pacer: Pacer::new(),
            totals: Totals::default(),
        }
    }
}

// `ManuallyDrop`: nothing of the module may run at process exit (a job's blocked client would be
// unblocked after the server has begun exiting), and a thread-local with a destructor would also
// keep the library from being unloaded. `deinit` empties the registry instead.
thread_local! {
    static REGISTRY: ManuallyDrop<RefCell<Registry>> = ManuallyDrop::new(RefCell::new(Registry::new()));
    static SIGNALS: ManuallyDrop<RefCell<Vec<Signal>>> =
        const { ManuallyDrop::new(RefCell::new(Vec::new())) };
    static EXPIRED: Cell<bool> = const { Cell::new(false) };
    /// `latency-monitor-threshold` and when it was read.
    static LATENCY_THRESHOLD: Cell<Option<(Instant, i64)>> = const { Cell::new(None) };
}

/// Sets up the driver at load time.
pub fn init(api: &Api) -> Result<(), String> {
    // `lib.rs` refuses servers without the event-loop API (Redis 6.x) before this runs.
    if !api.has_event_loop() {
        return Err("this server has no event-loop API (Redis 7.0+)".into());
    }
    let driver = Driver::EventLoop {
        wakeup: Wakeup::new(api)?,
        nap: None,
    };
    REGISTRY.with(|r| r.borrow_mut().driver = Some(driver));
    Ok(())
}

/// Refuses to unload while sweeps run; otherwise releases the driver.
pub fn deinit(api: &Api, ctx: Ctx) -> Result<(), String> {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if !r.jobs.is_empty() {
            return Err(format!(
                "{} sweep(s) still running: wait for them to end or SWEEP.CANCEL them",
                r.jobs.len()
            ));
        }
        if let Some(Driver::EventLoop { wakeup, nap }) = r.driver.take() {
            if let Some(id) = nap {
                api.stop_timer(ctx, id);
            }
            wakeup.close(api);
        }
        // A module loaded again starts afresh, whether or not the library was unloaded.
        *r = Registry::new();
        // Replaced, not cleared: a cleared Vec keeps its buffer, which an unloaded library
        // could never free.
        SIGNALS.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                *s = Vec::new();
            }
        });
        Ok(())
    })
}

/// How a sweep was started.
pub enum Started {
    /// The caller is blocked until the sweep ends; it gets the reply then.
    Blocking,
    /// `ASYNC`: reply with the job id now.
    Async(u64),
}

/// OBJECT IDLETIME's own error under an LFU policy.
const LFU_ERROR: &str = "An LFU maxmemory policy is selected, idle time not tracked. Please note \
    that when switching between policies at runtime LRU and LFU data will take some time to \
    adjust.";

/// Starts a sweep.
pub fn start(ctx: Ctx, args: ClearArgs) -> Result<Started, SweepError> {
    let api = api().ok_or_else(|| SweepError::Unavailable("the module is not loaded".into()))?;
    if !args.run_async && !api.can_block(ctx) {
        return Err(SweepError::CannotBlock);
    }
    if args.idle.is_some() {
        let policy = api.config_get(ctx, c"maxmemory-policy").unwrap_or_default();
        if policy.contains("lfu") {
            return Err(SweepError::Unavailable(LFU_ERROR.into()));
        }
    }
    let user = if api.has_key_acl() {
        Some(api.caller_name(ctx).ok_or_else(|| {
            SweepError::Unavailable("cannot tell which user runs the command".into())
        })?)
    } else if api.caller_has_all_keys(ctx) == Some(true) {
        None
    } else {
        return Err(SweepError::Unavailable(
            "this server cannot check key permissions one by one (Redis 7.0+ can): here \
             SWEEP.CLEAR needs a user that may access every key (allkeys)"
                .into(),
        ));
    };
    let db = api.selected_db(ctx);
    launch(api, ctx, args, db, user, None).map(|(id, async_)| {
        if async_ {
            Started::Async(id)
        } else {
            Started::Blocking
        }
    })
}

/// Starts one node's share of a cluster sweep (SPEC §6) as a background job of this node, for
/// the coordinator at `coordinator` (`host:port`), under `user` in database `db`.
pub fn start_share(
    ctx: Ctx,
    mut args: ClearArgs,
    db: i32,
    user: Option<Vec<u8>>,
    coordinator: String,
) -> Result<u64, SweepError> {
    let api = api().ok_or_else(|| SweepError::Unavailable("the module is not loaded".into()))?;
    args.run_async = true;
    if args.idle.is_some() {
        let policy = api.config_get(ctx, c"maxmemory-policy").unwrap_or_default();
        if policy.contains("lfu") {
            return Err(SweepError::Unavailable(LFU_ERROR.into()));
        }
    }
    if !api.select_db(ctx, db) {
        return Err(SweepError::Unavailable(format!(
            "cannot select database {db}"
        )));
    }
    launch(api, ctx, args, db, user, Some(coordinator)).map(|(id, _)| id)
}

/// A job id no job of this node uses (cluster sweeps take theirs from the same sequence).
pub fn reserve_id() -> u64 {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        let id = r.next_id;
        r.next_id += 1;
        id
    })
}

/// The counts of a running job so far and its elapsed time.
pub fn progress(id: u64) -> Option<(Counts, u64)> {
    REGISTRY.with(|r| {
        let r = r.try_borrow().ok()?;
        let job = r.jobs.iter().find(|j| j.id == id)?;
        Some((job.sweep.counts(), millis(job.started.elapsed())))
    })
}

/// Registers a job and wakes the driver. Returns its id and whether it runs in the background.
fn launch(
    api: &Api,
    ctx: Ctx,
    args: ClearArgs,
    db: i32,
    user: Option<Vec<u8>>,
    coordinator: Option<String>,
) -> Result<(u64, bool), SweepError> {
    // Read `latency-monitor-threshold` afresh for each sweep (then at most once a second).
    LATENCY_THRESHOLD.with(|cache| cache.set(None));
    let settings = config::current();
    let limits = Limits {
        count: args.count.unwrap_or(settings.count),
        batch: args.batch.unwrap_or(settings.batch),
        slice: Duration::from_micros(settings.slice_us),
        limit: args.limit,
    };
    let filters = Filters {
        key_type: args.key_type.clone(),
        idle_ms: args
            .idle
            .map(|s| i64::try_from(s.saturating_mul(1000)).unwrap_or(i64::MAX)),
        ttl: args.ttl,
        // Every key's usage is at least 0: MINSIZE 0 filters nothing.
        minsize: args.minsize.filter(|&m| m > 0),
        dryrun: args.dryrun,
    };
    if filters.minsize.is_some() && !api.memory_usage_works(ctx) {
        return Err(SweepError::Unavailable(
            "MINSIZE needs the MEMORY USAGE command, which this server refuses".into(),
        ));
    }
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if u64::try_from(r.jobs.len()).unwrap_or(u64::MAX) >= settings.max_jobs {
            return Err(SweepError::Unavailable(format!(
                "too many sweeps running (sweep.max-jobs is {}): wait, or SWEEP.CANCEL one",
                settings.max_jobs
            )));
        }
        let client = if args.run_async {
            None
        } else {
            Some(
                api.block(ctx)
                    .ok_or_else(|| SweepError::Unavailable("cannot block the client".into()))?,
            )
        };
        let id = r.next_id;
        r.next_id += 1;
        // A pattern pinned to one slot in cluster mode is always visited with `SCAN … MATCH`:
        // from Redis 7.4 and Valkey 8 the server then walks only that slot (SPEC §6). `MATCH`
        // carries the first pattern only, so not with `OR` patterns.
        let pinned = args.or.is_empty() && crate::cluster::pinned(ctx, &args.pattern);
        let cursor = Cursor::for_sweep(api, &args.pattern, &args.or, limits.count, pinned);
        if r.jobs.is_empty() {
            r.pacer.restart();
        }
        r.jobs.push(Job {
            id,
            db,
            sweep: Sweep::new(
                PatternSet::new(&args.pattern, &args.or, &args.except),
                limits,
            ),
            pattern: args.pattern,
            or: args.or,
            except: args.except,
            filters,
            cursor,
            client,
            user,
            started: Instant::now(),
            db_size: api.db_size(ctx),
            ending: None,
            coordinator,
        });
        wake(&mut r);
        Ok((id, args.run_async))
    })
}

/// `SWEEP.STATUS id`: one job's fields.
pub fn status_of(id: u64) -> Result<Vec<(&'static str, Value)>, SweepError> {
    REGISTRY.with(|r| {
        let r = r.borrow();
        if let Some(job) = r.jobs.iter().find(|j| j.id == id) {
            return Ok(Status::of(job).fields());
        }
        r.history
            .iter()
            .find(|s| s.id == id)
            .map(Status::fields)
            .ok_or(SweepError::NoSuchJob(id))
    })
}

/// `SWEEP.STATUS`: running jobs and the kept finished ones, newest first.
pub fn status_all() -> Vec<Vec<(&'static str, Value)>> {
    REGISTRY.with(|r| {
        let r = r.borrow();
        let mut all: Vec<Status> = r.jobs.iter().map(Status::of).collect();
        all.extend(r.history.iter().cloned());
        all.sort_by_key(|s| std::cmp::Reverse(s.id));
        all.iter().map(Status::fields).collect()
    })
}

/// `SWEEP.CANCEL id`: no slice is running while a command runs, so the job stops now; the
/// reply is its final fields.
pub fn cancel(ctx: Ctx, id: u64) -> Result<Vec<(&'static str, Value)>, SweepError> {
    let api = api().ok_or_else(|| SweepError::Unavailable("the module is not loaded".into()))?;
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        let Some(index) = r.jobs.iter().position(|j| j.id == id) else {
            return Err(match r.history.iter().find(|s| s.id == id) {
                Some(s) => SweepError::JobEnded(id, s.state),
                None => SweepError::NoSuchJob(id),
            });
        };
        let mut job = r.jobs.remove(index);
        job.ending = Some(Ending::Cancelled);
        let fields = finish(api, ctx, &mut r, job).fields();
        Ok(fields)
    })
}

/// `INFO sweep`.
pub fn info_fields() -> Vec<(&'static std::ffi::CStr, i64)> {
    REGISTRY.with(|r| {
        // INFO also runs inside the server's crash report, which may come in the middle of a
        // slice: then there is nothing safe to show.
        let Ok(r) = r.try_borrow() else {
            return Vec::new();
        };
        let t = &r.totals;
        let share = r.pacer.share_last_second(Instant::now());
        vec![
            (c"jobs_running", int(r.jobs.len() as u64)),
            (c"jobs_finished", int(t.finished)),
            (c"keys_scanned", int(t.scanned)),
            (c"keys_deleted", int(t.deleted)),
            (c"slices", int(t.slices)),
            (c"slice_max_us", int(t.slice_max_us)),
            (c"busy_us", int(t.busy_us)),
            (c"busy_shared_us", int(t.busy_shared_us)),
            (c"turns_waited", int(t.turns_waited)),
            (c"share_last_second", int(share)),
        ]
    })
}

/// Makes sure the driver will run soon.
fn wake(r: &mut Registry) {
    match &mut r.driver {
        Some(Driver::EventLoop { wakeup, .. }) => wakeup.set(true),
        None => {}
    }
}

/// Called by the server layer for each server event the module subscribed to.
pub fn server_event(ctx: Ctx, event: ServerEvent) {
    let signal = match event {
        ServerEvent::Tick => return tick(ctx),
        ServerEvent::Flushed(db) => Signal::Flushed(db),
        ServerEvent::Swapped(a, b) => Signal::Swapped(a, b),
        ServerEvent::RoleChanged => Signal::RoleChanged,
    };
    push_signal(signal);
}

/// A blocked client went away: its sweep stops at the next slice.
pub fn client_disconnected(handle: usize) {
    crate::cluster::client_disconnected(handle);
    push_signal(Signal::Disconnected(handle));
}

/// Applies what happened to the jobs running now (it only marks them; the driver ends them).
/// If the registry is in use (the event came from inside a slice), queue it for the driver.
/// A signal must never wait for a later job: a flush before a sweep starts is not its business.
fn push_signal(signal: Signal) {
    let queued = REGISTRY.with(|r| match r.try_borrow_mut() {
        Ok(mut r) => {
            apply(&mut r, signal);
            None
        }
        Err(_) => Some(signal),
    });
    if let Some(signal) = queued {
        SIGNALS.with(|s| {
            if let Ok(mut s) = s.try_borrow_mut() {
                s.push(signal);
            }
        });
    }
}

/// Marks the start of a key's deletion: an expiration seen after this is that key's.
pub fn expect_expiry() {
    EXPIRED.with(|e| e.set(false));
}

/// The server reported an expiration.
pub fn expiry_seen() {
    EXPIRED.with(|e| e.set(true));
}

/// Whether an expiration was reported since [`expect_expiry`].
pub fn expired_seen() -> bool {
    EXPIRED.with(Cell::get)
}

/// One turn of the driver: apply what happened, then run one slice of one sweep.
fn tick(ctx: Ctx) {
    let Some(api) = api() else { return };
    let signals = SIGNALS.with(|s| s.try_borrow_mut().map(|mut s| std::mem::take(&mut *s)));
    REGISTRY.with(|r| {
        let Ok(mut r) = r.try_borrow_mut() else {
            return;
        };
        for signal in signals.unwrap_or_default() {
            apply(&mut r, signal);
        }
        if !r.jobs.is_empty() && !api.is_primary(ctx) {
            for job in &mut r.jobs {
                job.ending
                    .get_or_insert(Ending::Aborted("this node is no longer a primary".into()));
            }
        }
        finish_ended(api, ctx, &mut r);
        if r.jobs.is_empty() {
            idle(&mut r);
            return;
        }
        // While writes are paused (CLIENT PAUSE WRITE, a failover) a sweep writes nothing.
        // Let the loop sleep; its periodic wake-ups bring the next tick.
        if api.writes_paused() {
            match &mut r.driver {
                Some(Driver::EventLoop { wakeup, .. }) => wakeup.set(false),
                None => {}
            }
            return;
        }
        let Some((budget, shared)) = pace(api, ctx, &mut r) else {
            return;
        };
        let turn = r.turn % r.jobs.len();
        r.turn = r.turn.wrapping_add(1);
        let Registry {
            jobs,
            totals,
            pacer,
            ..
        } = &mut *r;
        if let Some(job) = jobs.get_mut(turn) {
            let spent = run_slice(api, ctx, job, totals, budget);
            let us = u64::try_from(spent.as_micros()).unwrap_or(u64::MAX);
            totals.busy_us = totals.busy_us.saturating_add(us);
            if shared {
                totals.busy_shared_us = totals.busy_shared_us.saturating_add(us);
            }
            let share = config::current().busy_share;
            let cpu = crate::server::thread_cpu_time();
            pacer.ran(Instant::now(), cpu, spent, shared, share);
        }
        finish_ended(api, ctx, &mut r);
        if r.jobs.is_empty() {
            idle(&mut r);
        }
    });
}

/// Whether a slice runs at this turn, and its budget and whether it shares the thread with
/// active clients (SPEC §10: `sweep.busy-share`; the decision is `sweep_core::pace`'s). The
/// before-sleep hook runs before the replies of this iteration's commands are written, so a
/// turn left to the clients sends their replies now rather than after a slice.
///
/// While the pacer makes the sweeps wait for their share (clients keep the server busy), the
/// loop may sleep until a client or a 1 ms timer wakes it, rather than spin through empty
/// iterations. A single turn left to clients otherwise keeps the loop spinning, as before.
fn pace(api: &Api, ctx: Ctx, r: &mut Registry) -> Option<(Duration, bool)> {
    let settings = config::current();
    let slice = Duration::from_micros(settings.slice_us);
    let Registry {
        driver,
        pacer,
        totals,
        ..
    } = r;
    let Some(Driver::EventLoop { wakeup, nap }) = driver else {
        return None;
    };
    let commands = crate::server::commands_seen();
    let cpu = crate::server::thread_cpu_time;
    match pacer.turn(Instant::now(), cpu, commands, settings.busy_share, slice) {
        Turn::Run { budget, shared } => {
            wakeup.set(true);
            Some((budget, shared))
        }
        Turn::Wait { nap: sleep } => {
            totals.turns_waited += 1;
            if sleep {
                wakeup.set(false);
                if nap.is_none() {
                    *nap = Some(api.arm_timer_in(ctx, 1, on_nap_end));
                }
            } else {
                wakeup.set(true);
            }
            None
        }
    }
}

/// The nap timer fired: the before-sleep hook of this loop iteration decides again.
extern "C" fn on_nap_end(_ctx: Ctx, _data: *mut c_void) {
    REGISTRY.with(|r| {
        if let Ok(mut r) = r.try_borrow_mut() {
            if let Some(Driver::EventLoop { nap, .. }) = &mut r.driver {
                *nap = None;
            }
        }
    });
}

fn idle(r: &mut Registry) {
    if let Some(Driver::EventLoop { wakeup, .. }) = &mut r.driver {
        wakeup.set(false);
    }
}

fn apply(r: &mut Registry, signal: Signal) {
    for job in &mut r.jobs {
        let ending = match &signal {
            Signal::Disconnected(h) if job.client.as_ref().map(Blocked::handle) == Some(*h) => {
                Ending::Cancelled
            }
            Signal::Flushed(None) => Ending::Aborted("the databases were flushed".into()),
            Signal::Flushed(Some(db)) if *db == job.db => {
                Ending::Aborted("the database was flushed".into())
            }
            Signal::Swapped(a, b) if *a == job.db || *b == job.db => {
                Ending::Aborted("the database was swapped".into())
            }
            Signal::RoleChanged => Ending::Aborted("this node's replication role changed".into()),
            _ => continue,
        };
        job.ending.get_or_insert(ending);
    }
}

/// Runs one slice of `job` of at most `budget`; returns the time it took.
fn run_slice(
    api: &Api,
    ctx: Ctx,
    job: &mut Job,
    totals: &mut Totals,
    budget: Duration,
) -> Duration {
    if !api.select_db(ctx, job.db) {
        job.ending = Some(Ending::Aborted(format!(
            "cannot select database {}",
            job.db
        )));
        return Duration::ZERO;
    }
    // The user as it is now: ACL SETUSER or DELUSER may have run since the last slice.
    let user = match &job.user {
        Some(name) => match api.user(name) {
            Some(user) => Some(user),
            None => {
                job.ending = Some(Ending::Aborted(format!(
                    "user '{}' no longer exists",
                    printable(name)
                )));
                return Duration::ZERO;
            }
        },
        None => None,
    };
    job.sweep.set_slice_budget(budget);
    let before = job.sweep.counts();
    if let Some(client) = &job.client {
        api.measure(client, true);
    }
    let mut keyspace = Slice {
        api,
        ctx,
        cursor: &job.cursor,
        filters: &job.filters,
        user: user.as_ref(),
        deleted: Vec::new(),
        budget,
    };
    let started = Instant::now();
    let end = job.sweep.run_slice(&mut keyspace, Instant::now);
    keyspace.replicate();
    let spent = started.elapsed();
    if let Some(client) = &job.client {
        api.measure(client, false);
    }
    let after = job.sweep.counts();
    totals.scanned += after.scanned - before.scanned;
    totals.deleted += after.deleted - before.deleted;
    totals.slices += 1;
    totals.slice_max_us = totals
        .slice_max_us
        .max(u64::try_from(spent.as_micros()).unwrap_or(u64::MAX));
    report_latency(api, ctx, spent);
    if end == SliceEnd::Finished {
        job.ending = Some(Ending::Done);
    }
    spent
}

/// A slice longer than `latency-monitor-threshold` becomes a latency event, as the server's own
/// slow events do. The threshold is read when a sweep starts, then at most once a second, and
/// only after a slice of a millisecond or more (the smallest threshold there is).
fn report_latency(api: &Api, ctx: Ctx, spent: Duration) {
    let ms = i64::try_from(spent.as_millis()).unwrap_or(i64::MAX);
    if ms < 1 {
        return;
    }
    let threshold = LATENCY_THRESHOLD.with(|cache| match cache.get() {
        Some((at, value)) if at.elapsed() < Duration::from_secs(1) => value,
        _ => {
            let value = api
                .config_get(ctx, c"latency-monitor-threshold")
                .and_then(|v| v.trim().parse::<i64>().ok())
                .unwrap_or(0);
            cache.set(Some((Instant::now(), value)));
            value
        }
    });
    if threshold > 0 && ms >= threshold {
        api.latency_sample(c"sweep-slice", ms);
    }
}

/// Replies to and removes every sweep that has ended.
fn finish_ended(api: &Api, ctx: Ctx, r: &mut Registry) {
    let mut i = 0;
    while i < r.jobs.len() {
        if r.jobs.get(i).is_some_and(|j| j.ending.is_some()) {
            let job = r.jobs.remove(i);
            finish(api, ctx, r, job);
        } else {
            i += 1;
        }
    }
}

/// Every pattern of a sweep for the log: `'a*' or 'b*' except 'c*'`.
/// The patterns of a sweep as its log line names them.
pub fn patterns_shown(first: &[u8], or: &[Vec<u8>], except: &[Vec<u8>]) -> String {
    let mut shown = format!("'{}'", printable(first));
    for p in or {
        shown.push_str(&format!(" or '{}'", printable(p)));
    }
    for p in except {
        shown.push_str(&format!(" except '{}'", printable(p)));
    }
    shown
}

/// Ends a job: logs it, answers its blocked client, keeps it in the history.
fn finish(api: &Api, ctx: Ctx, r: &mut Registry, mut job: Job) -> Status {
    let ending = job.ending.take().unwrap_or(Ending::Done);
    job.ending = Some(ending.clone());
    let status = Status::of(&job);
    let counts = status.counts;
    api.log_notice(
        ctx,
        &format!(
            "sweep {}{} of {} on db {} {}{}: {}, longest slice {} us",
            job.id,
            match &job.coordinator {
                Some(addr) => format!(" (cluster share for coordinator {addr})"),
                None => String::new(),
            },
            patterns_shown(&job.pattern, &job.or, &job.except),
            job.db,
            ending.state(),
            match &ending {
                Ending::Aborted(why) => format!(" ({why})"),
                _ => String::new(),
            },
            counts.summary(status.elapsed_ms),
            counts.slice_max_us,
        ),
    );
    if let Some(client) = job.client.take() {
        let reply = match &ending {
            Ending::Aborted(why) => Reply::Error(format!(
                "ERR sweep aborted: {why}; {}",
                counts.summary(status.elapsed_ms)
            )),
            Ending::Done | Ending::Cancelled => {
                Reply::Fields(counts_fields(&counts, status.elapsed_ms))
            }
        };
        client.unblock(reply);
    }
    crate::cluster::job_ended(
        ctx,
        job.id,
        ending.state(),
        counts,
        status.elapsed_ms,
        status.reason.clone().unwrap_or_default(),
    );
    r.totals.finished += 1;
    let keep = usize::try_from(config::current().history).unwrap_or(usize::MAX);
    r.history.push_back(status.clone());
    while r.history.len() > keep {
        r.history.pop_front();
    }
    status
}
