//! `redis-sweep`: the command line for the redis-sweep module. `clear` starts `SWEEP.CLEAR … ASYNC`
//! and follows the job with `SWEEP.STATUS` (a live bar on a terminal), Ctrl-C sends
//! `SWEEP.CANCEL`; `status` and `cancel` show what the module commands reply.
//!
//! This crate talks to a server over the network with the `redis` client crate; it does not link
//! the module crate (a cdylib whose allocator only works inside a server).

mod args;
mod client;
mod errors;
mod progress;
mod render;
mod reply;

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Parser;
use nix::sys::signal::{pthread_sigmask, SigSet, SigmaskHow, Signal};

use args::{ClearArgs, Cli, Command};
use client::{Session, Target};
use errors::{Exit, Failure};
use progress::Progress;
use reply::Fields;

/// How often a running job is polled with SWEEP.STATUS (a fast, read-only command).
const POLL: Duration = Duration::from_millis(100);
/// How long to try to reconnect when the connection drops while following a job.
const RECONNECT_FOR: Duration = Duration::from_secs(10);
/// After a cluster cancel, how long to wait for every shard to report its final counts.
const SHARDS_SETTLE: Duration = Duration::from_secs(3);

/// Set once `SWEEP.CLEAR` may have created a job: from then on Ctrl-C cancels it.
static JOB_MAY_EXIST: AtomicBool = AtomicBool::new(false);
static JOB_ID: AtomicU64 = AtomicU64::new(0);
static PRESSES: AtomicUsize = AtomicUsize::new(0);

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { Exit::Usage as u8 } else { 0 });
        }
    };
    let result = match &cli.command {
        Command::Clear(args) => clear(&cli, args),
        Command::Status { id } => status(&cli, *id),
        Command::Cancel { id } => cancel(&cli, *id),
    };
    match result {
        Ok(exit) => ExitCode::from(exit as u8),
        Err(f) => {
            eprintln!("redis-sweep: {}", f.message);
            ExitCode::from(f.exit as u8)
        }
    }
}

/// Ctrl-C: before a job exists, exit at once; then, the first press asks the main loop to
/// cancel the job, and a second one exits at once.
fn install_interrupt_handler() -> mpsc::Receiver<()> {
    let (tx, rx) = mpsc::channel();
    let installed = ctrlc::set_handler(move || {
        let presses = PRESSES.fetch_add(1, Ordering::SeqCst) + 1;
        if !JOB_MAY_EXIST.load(Ordering::SeqCst) {
            eprintln!("\nredis-sweep: interrupted; nothing was started");
            std::process::exit(Exit::Interrupted as i32);
        }
        if presses >= 2 {
            progress::restore_terminal();
            let id = JOB_ID.load(Ordering::SeqCst);
            eprintln!(
                "\nredis-sweep: interrupted again: exiting without waiting; job {id} may still be \
                 running (redis-sweep status {id}, redis-sweep cancel {id})"
            );
            std::process::exit(Exit::Interrupted as i32);
        }
        let _ = tx.send(());
    });
    if let Err(e) = installed {
        eprintln!("redis-sweep: cannot catch Ctrl-C ({e}); it will not cancel the job");
        return rx;
    }
    // SIGINT now goes to ctrlc's own thread only: this thread and those it starts block it.
    // Otherwise it could land here during a read on the socket, which a read timeout makes fail
    // with EINTR instead of restarting (signal(7)), and a poll would look like a lost connection.
    // (SIGTERM and SIGHUP keep their default: the tool ends, the ASYNC job runs on.)
    let mut set = SigSet::empty();
    set.add(Signal::SIGINT);
    if let Err(e) = pthread_sigmask(SigmaskHow::SIG_BLOCK, Some(&set), None) {
        eprintln!("redis-sweep: cannot route Ctrl-C to its handler ({e})");
    }
    rx
}

fn clear(cli: &Cli, args: &ClearArgs) -> Result<Exit, Failure> {
    let interrupts = install_interrupt_handler();
    let target = Target::from_args(&cli.conn)?;
    let mut session = target.connect()?;

    if args.sweeps_everything()
        && !args.yes
        && std::io::stdin().is_terminal()
        && !confirm(&mut session)?
    {
        eprintln!("redis-sweep: nothing deleted");
        return Ok(Exit::Nothing);
    }

    let module_args = args.module_args();
    JOB_MAY_EXIST.store(true, Ordering::SeqCst);
    let id = match session.clear_async(&module_args) {
        Ok(id) => id,
        Err(f) => {
            JOB_MAY_EXIST.store(false, Ordering::SeqCst);
            return Err(f);
        }
    };
    JOB_ID.store(id, Ordering::SeqCst);

    let mut progress = Progress::new(std::io::stderr().is_terminal(), args.quiet, args.dry_run);
    progress.started(id, &describe(&module_args, target.db()));
    let last =
        follow(&mut session, id, &mut progress, &interrupts).map_err(|f| still_running(f, id))?;
    progress.finish(&last);
    print_result(&last, cli.conn.json, args.dry_run);
    Ok(Exit::of_state(last.text("state")))
}

/// The prompt before a sweep of every key. Declining, or end of input, is a no.
fn confirm(session: &mut Session) -> Result<bool, Failure> {
    let size = session
        .dbsize()
        .map(|n| format!(" (now {} keys)", render::group(n)))
        .unwrap_or_default();
    eprint!(
        "redis-sweep: this deletes every key of db {} on {}{size}. Type yes to go on: ",
        session.target.db(),
        session.target.addr
    );
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    if std::io::stdin().lock().read_line(&mut answer).is_err() {
        return Ok(false);
    }
    let answer = answer.trim();
    Ok(answer.eq_ignore_ascii_case("yes") || answer.eq_ignore_ascii_case("y"))
}

/// `SWEEP.CLEAR 'a:*' COUNT 100 … ASYNC on db 0`, for the plain "started" line.
fn describe(module_args: &[Vec<u8>], db: i64) -> String {
    let words: Vec<String> = module_args
        .iter()
        .enumerate()
        .map(|(i, w)| {
            let w = String::from_utf8_lossy(w);
            if i == 0 || w.contains(' ') || w.is_empty() {
                format!("'{w}'")
            } else {
                w.into_owned()
            }
        })
        .collect();
    format!("SWEEP.CLEAR {} on db {db}", words.join(" "))
}

/// A failure after the job started: the job itself goes on without this tool.
fn still_running(f: Failure, id: u64) -> Failure {
    if f.message.contains(&format!("job {id} ")) {
        return f;
    }
    Failure::new(
        f.exit,
        format!(
            "{}; job {id} was started and may still be running (redis-sweep status {id})",
            f.message
        ),
    )
}

/// Polls the job until it ends, showing progress; the first Ctrl-C cancels it. Returns the job's
/// final fields.
fn follow(
    session: &mut Session,
    id: u64,
    progress: &mut Progress,
    interrupts: &mpsc::Receiver<()>,
) -> Result<Fields, Failure> {
    let mut last: Option<Fields> = None;
    // When the connection first failed, of the failures in a row.
    let mut lost_since: Option<Instant> = None;
    loop {
        if interrupts.try_recv().is_ok() {
            progress.note(&format!(
                "redis-sweep: Ctrl-C: cancelling job {id} (Ctrl-C again to exit at once)"
            ));
            return cancel_job(session, id);
        }
        match session.status(id) {
            Ok(job) => {
                lost_since = None;
                progress.update(&job);
                if job.text("state") != Some("running") {
                    return Ok(job);
                }
                last = Some(job);
            }
            Err(f) if f.exit == Exit::Connection => {
                let deadline = *lost_since.get_or_insert_with(Instant::now) + RECONNECT_FOR;
                if Instant::now() >= deadline {
                    return Err(f);
                }
                progress.note(&format!("redis-sweep: {}; reconnecting", f.message));
                *session = reconnect(&session.target, id, deadline)?;
            }
            Err(f) if f.message.contains("no sweep with id") => {
                // Finished jobs are kept for `sweep.history`; with 0 it is gone at once.
                let seen = last
                    .as_ref()
                    .map(|j| format!(" The last counts seen: {}", one_line(j)))
                    .unwrap_or_default();
                return Err(Failure::new(
                    Exit::Nothing,
                    format!(
                        "job {id} has ended but the server no longer lists it (is sweep.history 0?), \
                         so how it ended is unknown.{seen}"
                    ),
                ));
            }
            Err(f) => return Err(f),
        }
        // Waits for the next poll, or wakes at once on Ctrl-C.
        if interrupts.recv_timeout(POLL).is_ok() {
            progress.note(&format!(
                "redis-sweep: Ctrl-C: cancelling job {id} (Ctrl-C again to exit at once)"
            ));
            return cancel_job(session, id);
        }
    }
}

fn one_line(job: &Fields) -> String {
    job.0
        .iter()
        .filter(|(n, _)| n != "shards")
        .map(|(n, v)| format!("{n} {}", v.display()))
        .collect::<Vec<_>>()
        .join(", ")
}

fn reconnect(target: &Target, id: u64, deadline: Instant) -> Result<Session, Failure> {
    loop {
        match target.connect() {
            Ok(s) => return Ok(s),
            Err(f) if Instant::now() >= deadline => {
                return Err(Failure::new(
                    f.exit,
                    format!(
                        "{}; job {id} may still be running on the server: redis-sweep status {id}",
                        f.message
                    ),
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// SWEEP.CANCEL, whose reply is the final counts. A job that ended meanwhile answers with an
/// error: its own final status is the answer then.
fn cancel_job(session: &mut Session, id: u64) -> Result<Fields, Failure> {
    let mut job = match session.cancel(id) {
        Ok(job) => job,
        Err(f) if f.message.contains("has already ended") => session.status(id)?,
        Err(f) => return Err(f),
    };
    // A cluster job: each shard reports its final counts within about a second (SPEC §6).
    let deadline = Instant::now() + SHARDS_SETTLE;
    while job
        .maps("shards")
        .iter()
        .any(|s| s.text("state") == Some("running"))
        && Instant::now() < deadline
    {
        std::thread::sleep(POLL);
        match session.status(id) {
            Ok(fresh) => job = fresh,
            Err(_) => break,
        }
    }
    Ok(job)
}

fn print_result(job: &Fields, json: bool, dry_run: bool) {
    if json {
        println!("{}", job.to_json());
    } else {
        print!("{}", render::summary(job, dry_run));
    }
}

fn status(cli: &Cli, id: Option<u64>) -> Result<Exit, Failure> {
    let mut session = Target::from_args(&cli.conn)?.connect()?;
    match id {
        Some(id) => {
            let job = session.status(id)?;
            if cli.conn.json {
                println!("{}", job.to_json());
            } else {
                print!("{}", render::detail(&job));
            }
        }
        None => {
            let jobs = session.status_all()?;
            if cli.conn.json {
                let all: Vec<_> = jobs.iter().map(Fields::to_json).collect();
                println!("{}", serde_json::Value::Array(all));
            } else if jobs.is_empty() {
                println!("no sweeps running or remembered");
            } else {
                let rows: Vec<&Fields> = jobs.iter().collect();
                print!("{}", render::table(&rows, &render::status_columns(&rows)));
            }
        }
    }
    Ok(Exit::Done)
}

fn cancel(cli: &Cli, id: u64) -> Result<Exit, Failure> {
    let mut session = Target::from_args(&cli.conn)?.connect()?;
    let job = session.cancel(id)?;
    if cli.conn.json {
        println!("{}", job.to_json());
    } else {
        print!("{}", render::detail(&job));
    }
    Ok(Exit::Done)
}
