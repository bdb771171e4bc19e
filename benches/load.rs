//! `make bench-load`: what other clients see while sweeps run. `redis-benchmark` (CLIENTS=50
//! connections, SET then GET on `key:__rand_int__`, which never match the sweeps' patterns) runs
//! alone, then while one `SWEEP.CLEAR image_proxy:*` deletes N_MATCH keys, then while ASYNC_JOBS
//! `SWEEP.CLEAR ... ASYNC` jobs delete N_MATCH keys between them (disjoint prefixes). The sweeps
//! alone, without the benchmark, give their wall time without load.
//!
//! SET and GET are separate `redis-benchmark` runs, each on a freshly loaded dataset with sweeps
//! of its own (with `-t set,get` in one run a sweep would overlap only SET). The sweeps start as
//! soon as every benchmark client has sent a request, so they run under the full load from their
//! first slice, and the benchmark is sized to outlast them: `-n` is REQUESTS, or what lasts the
//! longer of BENCH_SECONDS (4) and OUTLAST (1.3) times the same sweeps alone times 120/share (at
//! least 1.5): under load the sweeps get a little under `share` percent of the thread, in short
//! slices that do less per microsecond than full ones. The table says which
//! share of the benchmark's time the sweeps ran, and the benchmark's throughput while they ran
//! (the server's count of SET or GET calls between the sweeps' start and end).
//!
//! Checked, and fatal when wrong: `redis-benchmark` exits 0 (since 7.0 it exits at the first error
//! reply; `-e` is gone) and prints only its CSV, nothing on stderr; the server's commandstats
//! count exactly `-n` calls of the test's command, none rejected or failed; every sweep deletes
//! exactly what it should, and every other key is still there. Figures are medians of RUNS runs;
//! they are reported, never asserted.
//!
//! The benchmark outlasts the sweeps, so each run also measures the throughput after the sweeps
//! ended, in the same `redis-benchmark` run ("rps after"): a baseline taken under the same
//! conditions, which on a shared machine whose load drifts over minutes is a fairer reference
//! than the no-sweep scenario run earlier; the ratios report both.
//!
//! Each sweep scenario runs at every `sweep.busy-share` in BUSY_SHARES (20,50,100), set by
//! `CONFIG SET` before it; the sweeps alone run at the default share and at 100 (the idle-speed
//! ratio of SPEC §10). Under load a sweep takes longer at a smaller share, so `-n` is sized per
//! scenario: what lasts OUTLAST times the sweep alone, times 120/share (at least 1.5).
//!
//! Environment: RUNS (3), N_MATCH (1000000), N_OTHER (1000000), VALUE_SIZE (100), CLIENTS (50),
//! KEYSPACE (100000, redis-benchmark's -r), REQUESTS, BENCH_SECONDS, OUTLAST (1.3), ASYNC_JOBS
//! (4), BUSY_SHARES (20,50,100), REDIS_BENCHMARK (redis-benchmark), REDIS_SERVER,
//! REDIS_SWEEP_MODULE.

#[path = "../tests/common/mod.rs"]
mod common;
mod util;

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::ops::job;
use common::Server;
use redis::Value;
use util::{env_f64, env_usize};

const MATCH_PREFIX: &str = "image_proxy";
const OTHER_PREFIX: &str = "session";

struct Config {
    runs: usize,
    n_match: usize,
    n_other: usize,
    size: usize,
    clients: usize,
    keyspace: usize,
    jobs: usize,
    bench_seconds: f64,
    outlast: f64,
    shares: Vec<u64>,
    benchmark: String,
}

/// The default `sweep.busy-share`.
const DEFAULT_SHARE: u64 = 20;

fn set_share(con: &mut redis::Connection, share: u64) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("sweep.busy-share")
        .arg(share)
        .query::<()>(con)
        .unwrap();
}

/// `sweep_busy_us` from INFO sweep: main-thread time spent in slices so far.
fn busy_us(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("sweep").query(con).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("sweep_busy_us:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no sweep_busy_us in INFO sweep:\n{info}"))
}

/// What runs in the server while (or instead of) the benchmark.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Sweeps {
    None,
    /// One blocking `SWEEP.CLEAR image_proxy:*`, from its own thread and connection.
    One,
    /// `jobs` × `SWEEP.CLEAR image_proxy:J:* ASYNC`, each over N_MATCH / jobs keys.
    Async(usize),
}

impl Sweeps {
    /// The prefixes the matching keys are loaded under, with how many keys each.
    fn prefixes(self, n_match: usize) -> Vec<(String, usize)> {
        match self {
            Sweeps::None | Sweeps::One => vec![(MATCH_PREFIX.to_string(), n_match)],
            Sweeps::Async(jobs) => (0..jobs)
                .map(|j| {
                    // Spread the remainder so the total stays exactly n_match.
                    let n = n_match / jobs + usize::from(j < n_match % jobs);
                    (format!("{MATCH_PREFIX}:{j}"), n)
                })
                .collect(),
        }
    }
}

/// One test (`SET` or `GET`) as `redis-benchmark --csv` reports it.
#[derive(Clone, Copy, Default)]
struct Bench {
    rps: f64,
    p50: f64,
    p99: f64,
    max: f64,
    /// Wall time of the `redis-benchmark` process.
    wall: Duration,
}

#[derive(Clone, Copy, Default)]
struct SweepRun {
    /// From the first start to the last end.
    wall: Duration,
    deleted: u64,
    /// Keys visited, all sweeps together: each sweep scans the whole keyspace.
    scanned: u64,
    /// The benchmark's calls per second while the sweeps ran (server-side count).
    during_rps: Option<f64>,
    /// The share of the main thread the sweeps took (`sweep_busy_us` over their wall time).
    thread_share: f64,
    /// The benchmark's call count and the time when the sweeps ended.
    ended: Option<(u64, Instant)>,
    /// The benchmark's calls per second after the sweeps ended, in the same run: a baseline
    /// measured under the same conditions as `during_rps`.
    after_rps: Option<f64>,
}

// --- the dataset ---

fn populate(con: &mut redis::Connection, n: usize, prefix: &str, size: usize) {
    if n == 0 {
        return;
    }
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(n)
        .arg(prefix)
        .arg(size)
        .query::<()>(con)
        .unwrap();
}

/// The name `redis-benchmark -r` gives `__rand_int__`: twelve digits, zero-padded.
fn bench_key(i: usize) -> String {
    format!("key:{i:012}")
}

/// FLUSHALL, then the matching keys under `prefixes`, N_OTHER `session:N` keys, and every key the
/// benchmark may touch (`key:000000000000` ...), so GET hits and SET only overwrites: the number
/// of keys the sweep must leave is known exactly.
fn load(con: &mut redis::Connection, cfg: &Config, prefixes: &[(String, usize)]) {
    redis::cmd("FLUSHALL").arg("SYNC").query::<()>(con).unwrap();
    for (prefix, n) in prefixes {
        populate(con, *n, prefix, cfg.size);
    }
    populate(con, cfg.n_other, OTHER_PREFIX, cfg.size);
    let keys: Vec<usize> = (0..cfg.keyspace).collect();
    let mut pipe = redis::pipe();
    for chunk in keys.chunks(1000) {
        let mut mset = redis::cmd("MSET");
        for &i in chunk {
            mset.arg(bench_key(i)).arg("xxx");
        }
        pipe.add_command(mset).ignore();
    }
    pipe.query::<()>(con).unwrap();
    let size: usize = redis::cmd("DBSIZE").query(con).unwrap();
    assert_eq!(size, cfg.n_match + kept(cfg), "dataset not loaded");
}

/// Keys no sweep may delete.
fn kept(cfg: &Config) -> usize {
    cfg.n_other + cfg.keyspace
}

/// After a sweep: nothing under `image_proxy:*` is left and every other key is there.
fn verify_kept(con: &mut redis::Connection, cfg: &Config, what: &str) {
    let left: Vec<Vec<u8>> = redis::cmd("KEYS")
        .arg(format!("{MATCH_PREFIX}:*"))
        .query(con)
        .unwrap();
    assert!(
        left.is_empty(),
        "{what}: {} `{MATCH_PREFIX}:*` keys left after the sweep",
        left.len()
    );
    let size: usize = redis::cmd("DBSIZE").query(con).unwrap();
    assert_eq!(
        size,
        kept(cfg),
        "{what}: {} keys left, expected the {} other keys",
        size,
        kept(cfg)
    );
}

// --- replies ---

fn field_u64(f: &BTreeMap<String, String>, name: &str) -> u64 {
    f.get(name)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no integer {name:?} in {f:?}"))
}

/// `(calls, rejected_calls + failed_calls)` of `command` from INFO commandstats. (Not
/// `total_error_replies`: redis-rs sends CLIENT SETINFO on every connection, which 7.0 refuses.)
fn command_stats(con: &mut redis::Connection, command: &str) -> (u64, u64) {
    let info: String = redis::cmd("INFO").arg("commandstats").query(con).unwrap();
    let prefix = format!("cmdstat_{command}:");
    let Some(line) = info.lines().find_map(|l| l.strip_prefix(prefix.as_str())) else {
        return (0, 0);
    };
    let value = |name: &str| -> u64 {
        line.split(',')
            .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    (
        value("calls"),
        value("rejected_calls") + value("failed_calls"),
    )
}

/// How many calls of the benchmark's command the server has run, and when we asked.
fn calls_now(con: &mut redis::Connection, test: Option<&str>) -> Option<(u64, Instant)> {
    test.map(|t| (command_stats(con, t).0, Instant::now()))
}

/// The benchmark's throughput between two `calls_now`, as the server counted it.
fn rate(from: Option<(u64, Instant)>, to: Option<(u64, Instant)>) -> Option<f64> {
    let ((c0, t0), (c1, t1)) = (from?, to?);
    Some((c1 - c0) as f64 / (t1 - t0).as_secs_f64())
}

// --- the sweeps ---

/// The sweeps started before the benchmark: a thread that returns once they all ended.
type Running = Option<thread::JoinHandle<SweepRun>>;

/// Starts the sweeps. With a benchmark `test`, the thread also counts that command's calls from
/// just before the sweeps start to just after they end: the benchmark's throughput while they ran.
fn start_sweeps(server: &Server, sweeps: Sweeps, cfg: &Config, test: Option<&str>) -> Running {
    let test = test.map(str::to_string);
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    match sweeps {
        Sweeps::None => None,
        Sweeps::One => {
            let expected = cfg.n_match as u64;
            let (tx, rx) = mpsc::channel();
            let handle = thread::spawn(move || {
                let from = calls_now(&mut con, test.as_deref());
                tx.send(()).unwrap();
                let t = Instant::now();
                let reply: Value = redis::cmd("SWEEP.CLEAR")
                    .arg(format!("{MATCH_PREFIX}:*"))
                    .query(&mut con)
                    .unwrap();
                let wall = t.elapsed();
                let to = calls_now(&mut con, test.as_deref());
                let f = job(&reply);
                let deleted = field_u64(&f, "deleted");
                assert_eq!(deleted, expected, "SWEEP.CLEAR replied {f:?}");
                SweepRun {
                    wall,
                    deleted,
                    scanned: field_u64(&f, "scanned"),
                    during_rps: rate(from, to),
                    thread_share: 0.0,
                    ended: to,
                    after_rps: None,
                }
            });
            // The thread is about to send its command: the benchmark starts now.
            rx.recv().unwrap();
            Some(handle)
        }
        Sweeps::Async(_) => {
            let from = calls_now(&mut con, test.as_deref());
            let started = Instant::now();
            let jobs: Vec<(u64, Instant, usize)> = sweeps
                .prefixes(cfg.n_match)
                .into_iter()
                .map(|(prefix, n)| {
                    let t = Instant::now();
                    let id: u64 = redis::cmd("SWEEP.CLEAR")
                        .arg(format!("{prefix}:*"))
                        .arg("ASYNC")
                        .query(&mut con)
                        .unwrap();
                    (id, t, n)
                })
                .collect();
            Some(thread::spawn(move || {
                // One SWEEP.STATUS every 10 ms, for the first job still running: a light load.
                let deadline = Instant::now() + Duration::from_secs(600);
                let mut ended = Vec::new();
                for &(id, _, _) in &jobs {
                    loop {
                        let reply: Value =
                            redis::cmd("SWEEP.STATUS").arg(id).query(&mut con).unwrap();
                        let f = job(&reply);
                        if f.get("state").map(String::as_str) != Some("running") {
                            ended.push(f);
                            break;
                        }
                        assert!(Instant::now() < deadline, "job {id} still running: {f:?}");
                        thread::sleep(Duration::from_millis(10));
                    }
                }
                let to = calls_now(&mut con, test.as_deref());
                let mut end = started;
                let mut deleted = 0;
                let mut scanned = 0;
                for ((id, t, expected), f) in jobs.into_iter().zip(ended) {
                    let state = f.get("state").map(String::as_str);
                    assert_eq!(state, Some("done"), "job {id}: {f:?}");
                    let n = field_u64(&f, "deleted");
                    assert_eq!(n, expected as u64, "job {id} deleted {n}: {f:?}");
                    deleted += n;
                    scanned += field_u64(&f, "scanned");
                    end = end.max(t + Duration::from_millis(field_u64(&f, "elapsed_ms")));
                }
                SweepRun {
                    wall: end - started,
                    deleted,
                    scanned,
                    during_rps: rate(from, to),
                    thread_share: 0.0,
                    ended: to,
                    after_rps: None,
                }
            }))
        }
    }
}

/// Waits for the sweeps to end.
fn finish_sweeps(running: Running) -> Option<SweepRun> {
    running.map(|h| h.join().expect("the sweep thread panicked"))
}

// --- redis-benchmark ---

/// Starts `redis-benchmark -t test`.
fn spawn_benchmark(
    server: &Server,
    cfg: &Config,
    test: &str,
    requests: usize,
) -> (std::process::Child, Instant) {
    let t = Instant::now();
    let child = Command::new(&cfg.benchmark)
        .args(["-h", "127.0.0.1", "-p", &server.port.to_string()])
        .args(["-c", &cfg.clients.to_string()])
        .args(["-n", &requests.to_string()])
        .args(["-r", &cfg.keyspace.to_string()])
        .args(["-t", test, "--csv"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e} (apt-get install redis-tools)",
                cfg.benchmark
            )
        });
    (child, t)
}

/// Waits for `redis-benchmark` to end, checks it saw no error, and parses its CSV line.
fn finish_benchmark(child: std::process::Child, t: Instant, test: &str) -> Bench {
    let out = child.wait_with_output().unwrap();
    let wall = t.elapsed();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "redis-benchmark -t {test} failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // A header, then one line per test; anything else (an error message) is a failure.
    let mut header: Vec<String> = Vec::new();
    let mut row: Option<Vec<String>> = None;
    for line in stdout.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            line.starts_with('"'),
            "redis-benchmark -t {test} printed a non-CSV line (an error?): {line}\n{stdout}"
        );
        let cells: Vec<String> = line
            .split(',')
            .map(|c| c.trim_matches('"').to_string())
            .collect();
        if cells[0] == "test" {
            header = cells;
        } else if cells[0].eq_ignore_ascii_case(test) {
            row = Some(cells);
        } else {
            panic!("redis-benchmark -t {test} reported an unexpected test: {line}");
        }
    }
    let row = row.unwrap_or_else(|| panic!("no {test} line from redis-benchmark:\n{stdout}"));
    let cell = |name: &str| -> f64 {
        let i = header.iter().position(|h| h == name).unwrap_or_else(|| {
            panic!("redis-benchmark's CSV has no {name} column (it needs 7.0 or later): {header:?}")
        });
        row[i]
            .parse()
            .unwrap_or_else(|_| panic!("bad {name} {:?}", row[i]))
    };
    Bench {
        rps: cell("rps"),
        p50: cell("p50_latency_ms"),
        p99: cell("p99_latency_ms"),
        max: cell("max_latency_ms"),
        wall,
    }
}

/// One measurement: load the dataset, start the sweeps, run the benchmark test (if any) and wait
/// for the sweeps; check errors, counts and the keys left.
fn measure(
    server: &Server,
    cfg: &Config,
    sweeps: Sweeps,
    test: Option<&str>,
    requests: usize,
    share: u64,
) -> (Option<Bench>, Option<SweepRun>) {
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    set_share(&mut con, share);
    load(&mut con, cfg, &sweeps.prefixes(cfg.n_match));
    let before = test.map(|t| command_stats(&mut con, t));
    let child = test.map(|t| spawn_benchmark(server, cfg, t, requests));
    if let (Some(t), Some((calls0, _))) = (test, before) {
        // The sweeps start once every benchmark client has sent a request, so that they run
        // under the full load from their first slice.
        let deadline = Instant::now() + Duration::from_secs(30);
        while command_stats(&mut con, t).0 < calls0 + cfg.clients.min(requests) as u64 {
            assert!(
                Instant::now() < deadline,
                "redis-benchmark sent nothing in 30 s"
            );
            thread::sleep(Duration::from_millis(1));
        }
    }
    let busy0 = busy_us(&mut con);
    let running = start_sweeps(server, sweeps, cfg, test);
    let bench = child.map(|(c, started)| (finish_benchmark(c, started, test.unwrap()), started));
    let mut sweep = finish_sweeps(running);
    let busy = busy_us(&mut con) - busy0;
    if let Some(s) = &mut sweep {
        s.thread_share = busy as f64 / 1e6 / s.wall.as_secs_f64().max(1e-9);
        // The benchmark's tail after the sweeps, if it lasted at least a second: it ran
        // exactly `requests` calls, the last at its end.
        if let (Some((b, started)), Some((calls, at)), Some((calls0, _))) = (bench, s.ended, before)
        {
            let end = started + b.wall;
            if end > at + Duration::from_secs(1) {
                let tail = (calls0 + requests as u64).saturating_sub(calls);
                s.after_rps = Some(tail as f64 / (end - at).as_secs_f64());
            }
        }
    }
    let bench = bench.map(|(b, _)| b);
    if let (Some(t), Some((calls0, errors0))) = (test, before) {
        let (calls, errors) = command_stats(&mut con, t);
        assert_eq!(
            errors - errors0,
            0,
            "{t}: the server refused or failed {} calls",
            errors - errors0
        );
        assert_eq!(
            calls - calls0,
            requests as u64,
            "{t}: the server ran {} calls, redis-benchmark sent {requests}",
            calls - calls0
        );
    }
    if let Some(s) = sweep {
        assert_eq!(
            s.deleted, cfg.n_match as u64,
            "the sweeps deleted {}",
            s.deleted
        );
        verify_kept(&mut con, cfg, "after the sweep");
    } else {
        let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
        assert_eq!(size, cfg.n_match + kept(cfg), "keys lost without a sweep");
    }
    (bench, sweep)
}

// --- figures ---

fn median_f(v: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = v.collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_bench(runs: &[Bench]) -> Option<Bench> {
    if runs.is_empty() {
        return None;
    }
    Some(Bench {
        rps: median_f(runs.iter().map(|b| b.rps)),
        p50: median_f(runs.iter().map(|b| b.p50)),
        p99: median_f(runs.iter().map(|b| b.p99)),
        max: median_f(runs.iter().map(|b| b.max)),
        wall: Duration::from_secs_f64(median_f(runs.iter().map(|b| b.wall.as_secs_f64()))),
    })
}

/// The medians of the sweeps run during one test (or alone).
#[derive(Clone, Copy)]
struct SweepFig {
    wall: f64,
    deleted: u64,
    scanned: u64,
    during_rps: Option<f64>,
    thread_share: f64,
    /// The median over runs of each run's rps while sweeping over its rps after.
    during_over_after: Option<f64>,
}

fn median_sweep(runs: &[SweepRun]) -> Option<SweepFig> {
    if runs.is_empty() {
        return None;
    }
    let rps: Vec<f64> = runs.iter().filter_map(|s| s.during_rps).collect();
    Some(SweepFig {
        wall: median_f(runs.iter().map(|s| s.wall.as_secs_f64())),
        deleted: median_f(runs.iter().map(|s| s.deleted as f64)) as u64,
        scanned: median_f(runs.iter().map(|s| s.scanned as f64)) as u64,
        during_rps: (!rps.is_empty()).then(|| median_f(rps.into_iter())),
        thread_share: median_f(runs.iter().map(|s| s.thread_share)),
        during_over_after: {
            let r: Vec<f64> = runs
                .iter()
                .filter_map(|s| Some(s.during_rps? / s.after_rps?))
                .collect();
            (!r.is_empty()).then(|| median_f(r.into_iter()))
        },
    })
}

/// One scenario's medians.
struct Row {
    name: String,
    set: Option<Bench>,
    get: Option<Bench>,
    /// The sweeps during SET and during GET, or the sweeps alone.
    sweeps: Vec<SweepFig>,
    kind: Sweeps,
    load: bool,
    share: u64,
}

fn bench_cells(b: Option<Bench>) -> (String, String) {
    match b {
        Some(b) => (
            format!("{:.0}", b.rps),
            format!("{:.3} / {:.3} / {:.3}", b.p50, b.p99, b.max),
        ),
        None => ("-".into(), "-".into()),
    }
}

/// `f` of each sweep figure, joined with " / ", or "-".
fn per_sweep(r: &Row, f: impl Fn(usize, &SweepFig) -> Option<String>) -> String {
    let cells: Vec<String> = r
        .sweeps
        .iter()
        .enumerate()
        .map(|(i, s)| f(i, s).unwrap_or_else(|| "-".into()))
        .collect();
    if cells.is_empty() {
        "-".into()
    } else {
        cells.join(" / ")
    }
}

fn print_table(rows: &[Row]) {
    println!(
        "\n| scenario | SET rps | SET p50 / p99 / max ms | GET rps | GET p50 / p99 / max ms \
         | sweep wall s | sweep deleted | sweep scanned | benchmark time the sweep ran \
         | rps while sweeping | sweeps' share of the thread |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let (set_rps, set_lat) = bench_cells(r.set);
        let (get_rps, get_lat) = bench_cells(r.get);
        let bench_of = |i: usize| if i == 0 { r.set } else { r.get };
        let walls = per_sweep(r, |_, s| Some(format!("{:.2}", s.wall)));
        let deleted = per_sweep(r, |_, s| Some(s.deleted.to_string()));
        let scanned = per_sweep(r, |_, s| Some(s.scanned.to_string()));
        let share = per_sweep(r, |i, s| {
            let b = bench_of(i)?;
            Some(format!("{:.0}%", s.wall / b.wall.as_secs_f64() * 100.0))
        });
        let during = per_sweep(r, |_, s| s.during_rps.map(|x| format!("{x:.0}")));
        let thread = per_sweep(r, |_, s| Some(format!("{:.0}%", s.thread_share * 100.0)));
        let (share, during) = if r.load {
            (share, during)
        } else {
            ("-".into(), "-".into())
        };
        println!(
            "| {} | {set_rps} | {set_lat} | {get_rps} | {get_lat} | {walls} | {deleted} | {scanned} | {share} | {during} | {thread} |",
            r.name
        );
    }
    println!(
        "\nWith load, the sweep columns read \"during SET / during GET\". \"benchmark time the sweep \
         ran\": the sweep's wall time over redis-benchmark's (over 100% means the sweep outlasted \
         it). \"rps while sweeping\": the SET (GET) calls the server ran between the sweep's start \
         and end (INFO commandstats), per second: the throughput during the sweep alone, while the \
         rps column averages the whole benchmark. \"sweep scanned\": keys the sweeps visited, \
         together: every sweep scans the whole keyspace, so sweeps over disjoint prefixes each visit \
         all the keys. Latencies are redis-benchmark's, over the whole \
         run (the sweep's share of it is the column above). \"sweeps' share of the thread\": \
         the growth of INFO's sweep_busy_us over the sweeps' wall time."
    );
}

/// Rows where a sweep outlasted its benchmark: the benchmark did not cover the whole sweep.
fn print_overruns(rows: &[Row]) {
    for r in rows.iter().filter(|r| r.load) {
        for (i, s) in r.sweeps.iter().enumerate() {
            let Some(b) = (if i == 0 { r.set } else { r.get }) else {
                continue;
            };
            if s.wall > b.wall.as_secs_f64() {
                println!(
                    "NOTE: {} / {}: the sweep ({:.2} s) outlasted redis-benchmark ({:.2} s); its \
                     \"rps while sweeping\" counts a tail without the benchmark. Raise OUTLAST.",
                    r.name,
                    if i == 0 { "SET" } else { "GET" },
                    s.wall,
                    b.wall.as_secs_f64()
                );
            }
        }
    }
}

fn change(base: f64, now: f64) -> String {
    format!("{:+.1}%", (now / base - 1.0) * 100.0)
}

fn print_comparison(rows: &[Row]) {
    let Some(base) = rows.first() else { return };
    println!("\nAgainst the baseline (medians):");
    for r in rows.iter().skip(1).filter(|r| r.load) {
        for (i, (test, b, now)) in [("SET", base.set, r.set), ("GET", base.get, r.get)]
            .into_iter()
            .enumerate()
        {
            let (Some(b), Some(now)) = (b, now) else {
                continue;
            };
            let during = r
                .sweeps
                .get(i)
                .and_then(|s| s.during_rps)
                .map(|x| format!(", {} while sweeping ({x:.0} rps)", change(b.rps, x)))
                .unwrap_or_default();
            println!(
                "  {} / {test}: throughput {} over the run ({:.0} -> {:.0} rps){during}; \
                 p99 {:.3} -> {:.3} ms; max {:.3} -> {:.3} ms",
                r.name,
                change(b.rps, now.rps),
                b.rps,
                now.rps,
                b.p99,
                now.p99,
                b.max,
                now.max
            );
        }
    }
    println!("\nSweep wall time under load against alone at the default share (medians):");
    for r in rows.iter().filter(|r| r.load && r.kind != Sweeps::None) {
        let Some(alone) = alone(rows, r.kind, DEFAULT_SHARE) else {
            continue;
        };
        let under: Vec<String> = ["SET", "GET"]
            .iter()
            .zip(&r.sweeps)
            .map(|(t, s)| format!("{:.2} s during {t} (x{:.2})", s.wall, s.wall / alone.wall))
            .collect();
        println!(
            "  {}: {:.2} s alone, {}",
            r.name,
            alone.wall,
            under.join(", ")
        );
    }
}

/// The median wall time of `kind` alone at `share`.
fn alone(rows: &[Row], kind: Sweeps, share: u64) -> Option<SweepFig> {
    rows.iter()
        .find(|a| !a.load && a.kind == kind && a.share == share)
        .and_then(|a| a.sweeps.first().copied())
}

/// The goals of SPEC §10 as ratios: throughput while sweeping and p99 against the baseline,
/// per share; the idle speed at the default share against 100.
fn print_ratios(rows: &[Row]) {
    let Some(base) = rows.first() else { return };
    println!("\nRatios (medians; goals at the default share: throughput while sweeping >= 0.80, p99 <= 1.5, idle <= 1.05):");
    println!("| busy-share | sweeps | SET rps while sweeping / baseline | GET rps while sweeping / baseline | SET, GET rps while sweeping / after it (same run) | SET p99 / baseline | GET p99 / baseline | sweep wall under load / alone (SET, GET) |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in rows.iter().filter(|r| r.load && r.kind != Sweeps::None) {
        let during = |i: usize, b: Option<Bench>| -> String {
            match (r.sweeps.get(i).and_then(|s| s.during_rps), b) {
                (Some(x), Some(b)) => format!("{:.2}", x / b.rps),
                _ => "-".into(),
            }
        };
        let p99 = |now: Option<Bench>, b: Option<Bench>| -> String {
            match (now, b) {
                (Some(n), Some(b)) => format!("{:.2}", n.p99 / b.p99),
                _ => "-".into(),
            }
        };
        let slow = match alone(rows, r.kind, DEFAULT_SHARE) {
            Some(a) => r
                .sweeps
                .iter()
                .map(|s| format!("{:.1}", s.wall / a.wall))
                .collect::<Vec<_>>()
                .join(", "),
            None => "-".into(),
        };
        let same_run = r
            .sweeps
            .iter()
            .map(|s| {
                s.during_over_after
                    .map_or("-".into(), |x| format!("{x:.2}"))
            })
            .collect::<Vec<_>>()
            .join(", ");
        println!(
            "| {} | {} | {} | {} | {same_run} | {} | {} | {slow} |",
            r.share,
            match r.kind {
                Sweeps::One => "one SWEEP.CLEAR".to_string(),
                Sweeps::Async(n) => format!("{n} ASYNC"),
                Sweeps::None => "-".to_string(),
            },
            during(0, base.set),
            during(1, base.get),
            p99(r.set, base.set),
            p99(r.get, base.get),
        );
    }
    for kind in rows
        .iter()
        .filter(|r| !r.load && r.share == DEFAULT_SHARE)
        .map(|r| r.kind)
    {
        if let (Some(d), Some(full)) = (alone(rows, kind, DEFAULT_SHARE), alone(rows, kind, 100)) {
            println!(
                "idle speed, {}: {:.2} s at busy-share {DEFAULT_SHARE}, {:.2} s at 100: ratio {:.3}",
                match kind {
                    Sweeps::Async(n) => format!("{n} ASYNC sweeps alone"),
                    _ => "one SWEEP.CLEAR alone".into(),
                },
                d.wall,
                full.wall,
                d.wall / full.wall
            );
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cores} cores ({cpu})")
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn benchmark_version(bin: &str) -> String {
    Command::new(bin)
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e} (apt-get install redis-tools)"))
}

/// One scenario: the sweeps, with the benchmark (SET then GET) or alone; its runs so far.
struct Scenario {
    name: String,
    kind: Sweeps,
    load: bool,
    share: u64,
    /// redis-benchmark's -n.
    requests: usize,
    benches: [Vec<Bench>; 2],
    sweeps: [Vec<SweepRun>; 2],
}

impl Scenario {
    fn new(name: String, kind: Sweeps, load: bool, share: u64) -> Scenario {
        Scenario {
            name,
            kind,
            load,
            share,
            requests: 0,
            benches: [Vec::new(), Vec::new()],
            sweeps: [Vec::new(), Vec::new()],
        }
    }

    /// One run: SET then GET with load, the sweeps once without.
    fn run(&mut self, server: &Server, cfg: &Config, r: usize) {
        let requests = self.requests;
        let tests: &[Option<&str>] = if self.load {
            &[Some("set"), Some("get")]
        } else {
            &[None]
        };
        for (i, &test) in tests.iter().enumerate() {
            let (bench, sweep) = measure(server, cfg, self.kind, test, requests, self.share);
            let mut line = format!(
                "[load] run {r}/{}: {}, {}:",
                cfg.runs,
                self.name,
                test.unwrap_or("sweeps alone")
            );
            if let Some(b) = bench {
                line += &format!(
                    " {:.0} rps, p50 / p99 / max {:.3} / {:.3} / {:.3} ms, {:.2} s;",
                    b.rps,
                    b.p50,
                    b.p99,
                    b.max,
                    b.wall.as_secs_f64()
                );
            }
            if let Some(s) = sweep {
                line += &format!(
                    " sweep {:.2} s, deleted {}, scanned {}, {:.0}% of the thread",
                    s.wall.as_secs_f64(),
                    s.deleted,
                    s.scanned,
                    s.thread_share * 100.0
                );
                if let Some(x) = s.during_rps {
                    line += &format!(", {x:.0} rps while sweeping");
                }
                if let Some(x) = s.after_rps {
                    line += &format!(", {x:.0} rps after");
                }
            }
            eprintln!("{line}");
            self.benches[i].extend(bench);
            self.sweeps[i].extend(sweep);
        }
    }

    fn row(&self) -> Row {
        Row {
            name: self.name.clone(),
            set: median_bench(&self.benches[0]),
            get: median_bench(&self.benches[1]),
            sweeps: self.sweeps.iter().filter_map(|s| median_sweep(s)).collect(),
            kind: self.kind,
            load: self.load,
            share: self.share,
        }
    }
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let cfg = Config {
        runs: env_usize("RUNS", 3).max(1),
        n_match: env_usize("N_MATCH", 1_000_000),
        n_other: env_usize("N_OTHER", 1_000_000),
        size: env_usize("VALUE_SIZE", 100),
        clients: env_usize("CLIENTS", 50).max(1),
        keyspace: env_usize("KEYSPACE", 100_000).max(1),
        jobs: env_usize("ASYNC_JOBS", 4).max(1),
        bench_seconds: env_f64("BENCH_SECONDS", 4.0),
        outlast: env_f64("OUTLAST", 1.3),
        shares: std::env::var("BUSY_SHARES")
            .unwrap_or_else(|_| "20,50,100".into())
            .split(',')
            .filter_map(|v| v.trim().parse().ok())
            .filter(|v| (1..=100).contains(v))
            .collect(),
        benchmark: std::env::var("REDIS_BENCHMARK").unwrap_or_else(|_| "redis-benchmark".into()),
    };
    let bench_version = benchmark_version(&cfg.benchmark);

    let server = Server::start();
    let version = server
        .info_field("server", "redis_version")
        .unwrap_or_default();
    println!(
        "redis-sweep load bench: {} {version}, {bench_version}; medians of {} runs \
         (the scenarios take turns within each run)",
        server.server_name(),
        cfg.runs
    );
    println!(
        "machine: {}, load average {} at start. redis-benchmark runs on the same machine and \
         competes with the server for these cores (and so does anything else running), so absolute \
         figures are lower than on a dedicated server: compare the rows with each other.",
        machine(),
        loadavg()
    );

    let one = format!("SWEEP.CLEAR {MATCH_PREFIX}:*");
    let many = format!(
        "{} x SWEEP.CLEAR {MATCH_PREFIX}:J:* ASYNC ({} keys each)",
        cfg.jobs,
        cfg.n_match / cfg.jobs
    );
    let mut scenarios = vec![Scenario::new(
        "baseline: no sweep".into(),
        Sweeps::None,
        true,
        DEFAULT_SHARE,
    )];
    for &share in &cfg.shares {
        scenarios.push(Scenario::new(
            format!("busy-share {share}: during {one}"),
            Sweeps::One,
            true,
            share,
        ));
        scenarios.push(Scenario::new(
            format!("busy-share {share}: during {many}"),
            Sweeps::Async(cfg.jobs),
            true,
            share,
        ));
    }
    for share in [DEFAULT_SHARE, 100] {
        scenarios.push(Scenario::new(
            format!("busy-share {share}: no load: {one}"),
            Sweeps::One,
            false,
            share,
        ));
        scenarios.push(Scenario::new(
            format!("busy-share {share}: no load: {many}"),
            Sweeps::Async(cfg.jobs),
            false,
            share,
        ));
    }

    // -n: REQUESTS, or enough for the faster of SET and GET to last BENCH_SECONDS, and OUTLAST
    // times what the sweeps are expected to take under load: alone, times 120/share (they get
    // a little under that share of the thread while clients are busy, in short slices), at
    // least 1.5 (at share 100).
    let fixed = std::env::var("REQUESTS")
        .ok()
        .and_then(|v| v.replace('_', "").parse::<usize>().ok());
    let (rps, alone_secs) = if fixed.is_some() {
        (0.0, [0.0, 0.0])
    } else {
        eprintln!("[load] calibrating -n (not counted)");
        let probe = 100_000;
        let rps = ["set", "get"]
            .iter()
            .map(|t| {
                measure(&server, &cfg, Sweeps::None, Some(t), probe, DEFAULT_SHARE)
                    .0
                    .unwrap()
                    .rps
            })
            .fold(0.0, f64::max);
        let alone = [Sweeps::One, Sweeps::Async(cfg.jobs)].map(|k| {
            measure(&server, &cfg, k, None, 0, DEFAULT_SHARE)
                .1
                .map_or(0.0, |s| s.wall.as_secs_f64())
        });
        eprintln!(
            "[load] {rps:.0} rps; alone: one sweep {:.2} s, {} ASYNC {:.2} s",
            alone[0], cfg.jobs, alone[1]
        );
        (rps, alone)
    };
    for s in scenarios.iter_mut() {
        s.requests = fixed.unwrap_or_else(|| {
            let alone = match s.kind {
                Sweeps::None => 0.0,
                Sweeps::One => alone_secs[0],
                Sweeps::Async(_) => alone_secs[1],
            };
            // Under load a sweep took up to 6.3x its time alone at share 20 on a quiet machine
            // (it gets a little under 20 % of the thread, and a short slice does less per
            // microsecond than a full one: shorter SCAN and UNLINK calls), about 4x on a busy
            // one; 2.2x at 50, 1.4x at 100.
            let slower = (120.0 / s.share as f64).max(1.5);
            let secs = cfg.bench_seconds.max(cfg.outlast * alone * slower);
            (((rps * secs) / 10_000.0).ceil() as usize * 10_000).max(100_000)
        });
    }
    println!(
        "dataset, reloaded before every run: {} `{MATCH_PREFIX}:*` (under {} prefixes for the ASYNC \
         sweeps) + {} `{OTHER_PREFIX}:*` strings of {} bytes + the {} `key:*` the benchmark uses. \
         Load: redis-benchmark -c {} -n N -r {} -t set, then -t get, each a run of its own \
         with its own sweeps, started once all its clients are sending; N per scenario: {}.",
        cfg.n_match,
        cfg.jobs,
        cfg.n_other,
        cfg.size,
        cfg.keyspace,
        cfg.clients,
        cfg.keyspace,
        scenarios
            .iter()
            .filter(|s| s.load)
            .map(|s| format!("{} {}", s.name, s.requests))
            .collect::<Vec<_>>()
            .join("; ")
    );

    for r in 1..=cfg.runs {
        for s in scenarios.iter_mut() {
            s.run(&server, &cfg, r);
        }
    }
    let rows: Vec<Row> = scenarios.iter().map(Scenario::row).collect();

    print_table(&rows);
    print_overruns(&rows);
    print_comparison(&rows);
    print_ratios(&rows);
    println!(
        "\nChecks passed in every run: redis-benchmark exited 0 with nothing but its CSV and \
         nothing on stderr; the server ran exactly -n SET (GET) calls, none rejected or failed; \
         each sweep deleted exactly {} keys, no `{MATCH_PREFIX}:*` key was left and all {} other \
         keys were. Load average at the end: {}.",
        cfg.n_match,
        kept(&cfg),
        loadavg()
    );
}
