//! The running sweeps and the driver that gives each of them slices of main-thread time.
//!
//! Everything here runs on the server's main thread: commands, event-loop hooks, timers and
//! server events. State lives in thread-locals; callbacks from the server that may arrive while
//! the registry is in use (a disconnect, a flush) only queue a [`Signal`], which the driver
//! applies before its next slice.

use std::cell::{Cell, RefCell};
use std::ffi::c_void;
use std::time::{Duration, Instant};

use redis_module::raw;
use sweep_core::args::{printable, ClearArgs};
use sweep_core::error::SweepError;
use sweep_core::glob::Pattern;
use sweep_core::sweep::{Limits, SliceEnd, Sweep};

use crate::config;
use crate::server::{api, Api, Blocked, Cursor, KeyName, Reply, ServerEvent, Slice, Value, Wakeup};

type Ctx = *mut raw::RedisModuleCtx;

/// Why a sweep ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    /// Every matching key was reached.
    Done,
    /// Its client went away.
    Cancelled,
    /// The server changed under it (flush, swap, role change).
    Aborted(String),
}

impl Ending {
    fn name(&self) -> &'static str {
        match self {
            Ending::Done => "done",
            Ending::Cancelled => "cancelled",
            Ending::Aborted(_) => "aborted",
        }
    }
}

/// Something that happened to the sweeps while the driver was not running.
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
    sweep: Sweep<KeyName>,
    cursor: Cursor,
    client: Option<Blocked>,
    started: Instant,
    ending: Option<Ending>,
}

enum Driver {
    /// Redis 7.0+: slices run in the before-sleep hook; the eventfd keeps the loop awake.
    EventLoop {
        wakeup: Wakeup,
        /// `server::commands_seen()` when the last slice ran.
        commands: u64,
        /// Whether the last tick gave its turn to clients.
        yielded: bool,
    },
    /// Older servers: a 0 ms timer re-armed after each slice.
    Timer { armed: bool },
}

struct Registry {
    jobs: Vec<Job>,
    next_id: u64,
    turn: usize,
    driver: Option<Driver>,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = const {
        RefCell::new(Registry { jobs: Vec::new(), next_id: 1, turn: 0, driver: None })
    };
    static SIGNALS: RefCell<Vec<Signal>> = const { RefCell::new(Vec::new()) };
    static EXPIRED: Cell<bool> = const { Cell::new(false) };
}

/// Sets up the driver at load time.
pub fn init(api: &Api) -> Result<(), String> {
    let driver = if api.has_event_loop() {
        Driver::EventLoop {
            wakeup: Wakeup::new(api)?,
            commands: 0,
            yielded: false,
        }
    } else {
        Driver::Timer { armed: false }
    };
    REGISTRY.with(|r| r.borrow_mut().driver = Some(driver));
    Ok(())
}

/// Refuses to unload while sweeps run; otherwise releases the driver.
pub fn deinit(api: &Api) -> Result<(), String> {
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if !r.jobs.is_empty() {
            return Err(format!(
                "{} sweep(s) still running: wait for them to end",
                r.jobs.len()
            ));
        }
        if let Some(Driver::EventLoop { wakeup, .. }) = r.driver.take() {
            wakeup.close(api);
        }
        Ok(())
    })
}

/// Starts a sweep that blocks its caller until it ends.
pub fn start_blocking(ctx: Ctx, args: ClearArgs) -> Result<(), SweepError> {
    let api = api().ok_or_else(|| SweepError::Unavailable("the module is not loaded".into()))?;
    if !api.can_block(ctx) {
        return Err(SweepError::CannotBlock);
    }
    let settings = config::current();
    let limits = Limits {
        count: args.count.unwrap_or(settings.count),
        batch: args.batch.unwrap_or(settings.batch),
        slice: Duration::from_micros(settings.slice_us),
    };
    REGISTRY.with(|r| {
        let mut r = r.borrow_mut();
        if r.jobs.len() as u64 >= settings.max_jobs {
            return Err(SweepError::Unavailable(format!(
                "too many sweeps running (sweep.max-jobs is {})",
                settings.max_jobs
            )));
        }
        let client = api
            .block(ctx)
            .ok_or_else(|| SweepError::Unavailable("cannot block the client".into()))?;
        let id = r.next_id;
        r.next_id += 1;
        r.jobs.push(Job {
            id,
            db: api.selected_db(ctx),
            sweep: Sweep::new(Pattern::new(&args.pattern), limits),
            pattern: args.pattern,
            cursor: Cursor::new(api),
            client: Some(client),
            started: Instant::now(),
            ending: None,
        });
        wake(api, ctx, &mut r);
        Ok(())
    })
}

/// Makes sure the driver will run soon.
fn wake(api: &Api, ctx: Ctx, r: &mut Registry) {
    match &mut r.driver {
        Some(Driver::EventLoop { wakeup, .. }) => wakeup.set(true),
        Some(Driver::Timer { armed }) if !*armed => {
            api.arm_timer(ctx, on_timer);
            *armed = true;
        }
        _ => {}
    }
}

extern "C" fn on_timer(ctx: Ctx, _data: *mut c_void) {
    REGISTRY.with(|r| {
        if let Some(Driver::Timer { armed }) = &mut r.borrow_mut().driver {
            *armed = false;
        }
    });
    tick(ctx);
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
    push_signal(Signal::Disconnected(handle));
}

fn push_signal(signal: Signal) {
    SIGNALS.with(|s| {
        if let Ok(mut s) = s.try_borrow_mut() {
            s.push(signal);
        }
    });
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
                Some(Driver::Timer { .. }) => wake(api, ctx, &mut r),
                None => {}
            }
            return;
        }
        if clients_first(&mut r) {
            return;
        }
        let turn = r.turn % r.jobs.len();
        r.turn = r.turn.wrapping_add(1);
        if let Some(job) = r.jobs.get_mut(turn) {
            run_slice(api, ctx, job);
        }
        finish_ended(api, ctx, &mut r);
        if r.jobs.is_empty() {
            idle(&mut r);
        } else {
            wake(api, ctx, &mut r);
        }
    });
}

/// The before-sleep hook runs before the replies of this iteration's commands are written. If
/// commands ran since the last slice, give this one tick to them, so their replies go out now
/// rather than after another slice; never two ticks in a row, so a busy server still sweeps.
fn clients_first(r: &mut Registry) -> bool {
    let Some(Driver::EventLoop {
        commands, yielded, ..
    }) = &mut r.driver
    else {
        return false;
    };
    let seen = crate::server::commands_seen();
    let give_way = seen != *commands && !*yielded;
    *commands = seen;
    *yielded = give_way;
    give_way
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

fn run_slice(api: &Api, ctx: Ctx, job: &mut Job) {
    if !api.select_db(ctx, job.db) {
        job.ending = Some(Ending::Aborted(format!(
            "cannot select database {}",
            job.db
        )));
        return;
    }
    let mut keyspace = Slice {
        api,
        ctx,
        cursor: &job.cursor,
        deleted: Vec::new(),
    };
    let end = job.sweep.run_slice(&mut keyspace, Instant::now);
    keyspace.replicate();
    if end == SliceEnd::Finished {
        job.ending = Some(Ending::Done);
    }
}

/// Replies to and removes every sweep that has ended.
fn finish_ended(api: &Api, ctx: Ctx, r: &mut Registry) {
    let mut i = 0;
    while i < r.jobs.len() {
        if r.jobs.get(i).is_some_and(|j| j.ending.is_some()) {
            let job = r.jobs.remove(i);
            finish(api, ctx, job);
        } else {
            i += 1;
        }
    }
}

fn finish(api: &Api, ctx: Ctx, mut job: Job) {
    let ending = job.ending.take().unwrap_or(Ending::Done);
    let elapsed_ms = u64::try_from(job.started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let counts = job.sweep.counts();
    api.log_notice(
        ctx,
        &format!(
            "sweep {} of '{}' on db {} {}{}: {}, longest slice {} us",
            job.id,
            printable(&job.pattern),
            job.db,
            ending.name(),
            match &ending {
                Ending::Aborted(why) => format!(" ({why})"),
                _ => String::new(),
            },
            counts.summary(elapsed_ms),
            counts.slice_max_us,
        ),
    );
    if let Some(client) = job.client.take() {
        let reply = match ending {
            Ending::Aborted(why) => Reply::Error(format!(
                "ERR sweep aborted: {why}; {}",
                counts.summary(elapsed_ms)
            )),
            Ending::Done | Ending::Cancelled => Reply::Fields(
                counts
                    .fields(elapsed_ms)
                    .iter()
                    .map(|&(name, value)| (name, Value::Int(value)))
                    .collect(),
            ),
        };
        client.unblock(reply);
    }
}
