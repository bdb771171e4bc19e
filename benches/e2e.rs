//! `make bench`: the approaches of SPEC §1 against SWEEP.CLEAR, on the same dataset, in one run.
//!
//! For each approach, on a fresh copy of the dataset: wall time, server CPU time (from
//! /proc/PID/stat), keys deleted and kept (verified), and the latency another client sees
//! meanwhile (a prober sending PING in a tight loop on its own connection). Each figure is the
//! median of `RUNS` runs. Then a scaling run of SWEEP.CLEAR alone.
//!
//! Environment: N_MATCH (1000000), N_OTHER (1000000), VALUE_SIZE (100), RUNS (3),
//! N_HASH (1000 hashes of HASH_FIELDS=1000 fields, 0 to skip), SCALING ("250000,1000000,4000000",
//! empty to skip), APPROACHES (comma list of sweep,client,lua,keys,flushall), ONE_PASS (250000
//! keys per prefix for the one-pass comparison of OR patterns, 0 to skip), REDIS_SERVER.

#[path = "../tests/common/mod.rs"]
mod common;
mod util;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Server, ServerOptions};
use util::{env_usize, server_cpu};

const MATCH_PREFIX: &str = "image_proxy";
const OTHER_PREFIX: &str = "session";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Approach {
    Sweep,
    Client,
    Lua,
    KeysDel,
    FlushAll,
}

impl Approach {
    fn name(self) -> &'static str {
        match self {
            Approach::Sweep => "SWEEP.CLEAR",
            Approach::Client => "client SCAN+UNLINK",
            Approach::Lua => "Lua SCAN+UNLINK loop",
            Approach::KeysDel => "KEYS + DEL",
            Approach::FlushAll => "FLUSHALL SYNC (all keys)",
        }
    }

    fn key(self) -> &'static str {
        match self {
            Approach::Sweep => "sweep",
            Approach::Client => "client",
            Approach::Lua => "lua",
            Approach::KeysDel => "keys",
            Approach::FlushAll => "flushall",
        }
    }
}

/// What one dataset is made of.
#[derive(Clone, Copy)]
enum Dataset {
    Strings {
        matching: usize,
        other: usize,
        size: usize,
    },
    Hashes {
        matching: usize,
        fields: usize,
        other: usize,
    },
}

impl Dataset {
    fn describe(self) -> String {
        match self {
            Dataset::Strings {
                matching,
                other,
                size,
            } => format!("{matching} `{MATCH_PREFIX}:*` + {other} other strings of {size} bytes"),
            Dataset::Hashes {
                matching,
                fields,
                other,
            } => format!(
                "{matching} `{MATCH_PREFIX}:*` hashes of {fields} fields + {other} other strings"
            ),
        }
    }

    fn matching(self) -> usize {
        match self {
            Dataset::Strings { matching, .. } | Dataset::Hashes { matching, .. } => matching,
        }
    }

    fn other(self) -> usize {
        match self {
            Dataset::Strings { other, .. } | Dataset::Hashes { other, .. } => other,
        }
    }

    fn load(self, con: &mut redis::Connection) {
        redis::cmd("FLUSHALL").arg("SYNC").query::<()>(con).unwrap();
        match self {
            Dataset::Strings {
                matching,
                other,
                size,
            } => {
                populate(con, matching, MATCH_PREFIX, size);
                populate(con, other, OTHER_PREFIX, size);
            }
            Dataset::Hashes {
                matching,
                fields,
                other,
            } => {
                populate(con, other, OTHER_PREFIX, 100);
                let mut pipe = redis::pipe();
                let mut queued = 0;
                for h in 0..matching {
                    let key = format!("{MATCH_PREFIX}:{h}");
                    for chunk in (0..fields).collect::<Vec<_>>().chunks(100) {
                        let mut cmd = redis::cmd("HSET");
                        cmd.arg(&key);
                        for f in chunk {
                            cmd.arg(format!("field:{f}")).arg("v".repeat(20));
                        }
                        pipe.add_command(cmd).ignore();
                        queued += 1;
                    }
                    if queued >= 1000 {
                        pipe.query::<()>(con).unwrap();
                        pipe = redis::pipe();
                        queued = 0;
                    }
                }
                pipe.query::<()>(con).unwrap();
            }
        }
        let size: usize = redis::cmd("DBSIZE").query(con).unwrap();
        assert_eq!(size, self.matching() + self.other(), "dataset not loaded");
    }
}

/// `DEBUG POPULATE` names keys `prefix:N`: fast, and the values have the given size.
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

/// A client that sends PING in a tight loop and records each round trip.
struct Prober {
    stop: Arc<AtomicBool>,
    handle: thread::JoinHandle<Vec<Duration>>,
}

impl Prober {
    fn start(server: &Server) -> Prober {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let client = server.client();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = thread::spawn(move || {
            let mut con = client.get_connection().unwrap();
            redis::cmd("PING").query::<String>(&mut con).unwrap();
            ready_tx.send(()).unwrap();
            let mut samples = Vec::with_capacity(1 << 20);
            while !flag.load(Ordering::Relaxed) {
                let t = Instant::now();
                redis::cmd("PING").query::<String>(&mut con).unwrap();
                samples.push(t.elapsed());
            }
            samples
        });
        // Connected and answered once: from now on it measures only the approach.
        ready_rx.recv().unwrap();
        Prober { stop, handle }
    }

    fn finish(self) -> Vec<Duration> {
        self.stop.store(true, Ordering::Relaxed);
        let mut samples = self.handle.join().unwrap();
        samples.sort();
        samples
    }
}

fn quantile(sorted: &[Duration], q: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Clone, Copy, Default)]
struct Measure {
    wall: Duration,
    cpu: Duration,
    deleted: usize,
    kept_ok: bool,
    p50: Duration,
    p99: Duration,
    p999: Duration,
    max: Duration,
}

const LUA_LOOP: &str = "local cursor = '0' local n = 0 \
    repeat \
      local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000) \
      cursor = r[1] local keys = r[2] \
      for i = 1, #keys, 500 do \
        n = n + redis.call('UNLINK', unpack(keys, i, math.min(i + 499, #keys))) \
      end \
    until cursor == '0' \
    return n";

fn run(approach: Approach, con: &mut redis::Connection, pattern: &str) -> usize {
    match approach {
        Approach::Sweep => {
            let v: redis::Value = redis::cmd("SWEEP.CLEAR").arg(pattern).query(con).unwrap();
            let f = common::reply::fields(&v);
            usize::try_from(f["deleted"]).unwrap()
        }
        Approach::Client => {
            // The common recipe: SCAN MATCH COUNT 1000, UNLINK what each step returns in
            // batches of 500, sequentially.
            let mut cursor = 0u64;
            let mut deleted = 0usize;
            loop {
                let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(1000)
                    .query(con)
                    .unwrap();
                for chunk in keys.chunks(500) {
                    let n: usize = redis::cmd("UNLINK").arg(chunk).query(con).unwrap();
                    deleted += n;
                }
                cursor = next;
                if cursor == 0 {
                    return deleted;
                }
            }
        }
        Approach::Lua => redis::cmd("EVAL")
            .arg(LUA_LOOP)
            .arg(0)
            .arg(pattern)
            .query(con)
            .unwrap(),
        Approach::KeysDel => {
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(pattern).query(con).unwrap();
            if keys.is_empty() {
                return 0;
            }
            redis::cmd("DEL").arg(keys).query(con).unwrap()
        }
        Approach::FlushAll => {
            let n: usize = redis::cmd("DBSIZE").query(con).unwrap();
            redis::cmd("FLUSHALL").arg("SYNC").query::<()>(con).unwrap();
            n
        }
    }
}

fn measure(server: &Server, dataset: Dataset, approach: Approach) -> Measure {
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    dataset.load(&mut con);
    let pattern = format!("{MATCH_PREFIX}:*");
    let prober = Prober::start(server);
    let cpu0 = server_cpu(server.pid);
    let t = Instant::now();
    let deleted = run(approach, &mut con, &pattern);
    let wall = t.elapsed();
    let cpu = server_cpu(server.pid).saturating_sub(cpu0);
    let samples = prober.finish();
    let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    let left: Vec<Vec<u8>> = redis::cmd("KEYS").arg(&pattern).query(&mut con).unwrap();
    let kept_ok = if approach == Approach::FlushAll {
        size == 0
    } else {
        size == dataset.other() && left.is_empty() && deleted == dataset.matching()
    };
    Measure {
        wall,
        cpu,
        deleted,
        kept_ok,
        p50: quantile(&samples, 0.50),
        p99: quantile(&samples, 0.99),
        p999: quantile(&samples, 0.999),
        max: samples.last().copied().unwrap_or_default(),
    }
}

fn median(mut runs: Vec<Measure>) -> Measure {
    fn mid<T: Ord + Copy>(mut v: Vec<T>) -> T {
        v.sort();
        v[v.len() / 2]
    }
    let m = Measure {
        wall: mid(runs.iter().map(|r| r.wall).collect()),
        cpu: mid(runs.iter().map(|r| r.cpu).collect()),
        deleted: mid(runs.iter().map(|r| r.deleted).collect()),
        kept_ok: runs.iter().all(|r| r.kept_ok),
        p50: mid(runs.iter().map(|r| r.p50).collect()),
        p99: mid(runs.iter().map(|r| r.p99).collect()),
        p999: mid(runs.iter().map(|r| r.p999).collect()),
        max: mid(runs.iter().map(|r| r.max).collect()),
    };
    runs.clear();
    m
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64())
}

fn table(title: &str, rows: &[(Approach, Measure)]) {
    let base = rows
        .iter()
        .find(|(a, _)| *a == Approach::Sweep)
        .map(|(_, m)| m.wall.as_secs_f64())
        .unwrap_or(0.0);
    println!("\n{title}");
    println!(
        "| approach | wall s | server CPU s | deleted | kept verified | other client p50 / p99 / p99.9 / max ms | wall / SWEEP.CLEAR |"
    );
    println!("|---|---|---|---|---|---|---|");
    for (a, m) in rows {
        let ratio = if base > 0.0 {
            format!("{:.2}", m.wall.as_secs_f64() / base)
        } else {
            "-".into()
        };
        println!(
            "| {} | {} | {} | {} | {} | {} / {} / {} / {} | {} |",
            a.name(),
            secs(m.wall),
            secs(m.cpu),
            m.deleted,
            if m.kept_ok { "yes" } else { "NO" },
            ms(m.p50),
            ms(m.p99),
            ms(m.p999),
            ms(m.max),
            ratio
        );
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
    format!("{cores} cores, {cpu}")
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is taken from the command line.
    let runs = env_usize("RUNS", 3).max(1);
    let n_match = env_usize("N_MATCH", 1_000_000);
    let n_other = env_usize("N_OTHER", 1_000_000);
    let size = env_usize("VALUE_SIZE", 100);
    let n_hash = env_usize("N_HASH", 1000);
    let hash_fields = env_usize("HASH_FIELDS", 1000);
    let chosen = std::env::var("APPROACHES").unwrap_or_else(|_| "sweep,client,lua,keys".into());
    let approaches: Vec<Approach> = [
        Approach::Sweep,
        Approach::Client,
        Approach::Lua,
        Approach::KeysDel,
        Approach::FlushAll,
    ]
    .into_iter()
    .filter(|a| chosen.split(',').any(|c| c.trim() == a.key()))
    .collect();
    let scaling: Vec<usize> = std::env::var("SCALING")
        .unwrap_or_else(|_| "250000,1000000,4000000".into())
        .split(',')
        .filter_map(|s| s.trim().replace('_', "").parse().ok())
        .collect();

    let server = Server::start_with(ServerOptions {
        extra_args: vec!["--lua-time-limit".into(), "0".into()],
        ..Default::default()
    });
    let version = server
        .info_field("server", "redis_version")
        .unwrap_or_default();
    println!(
        "redis-sweep end-to-end bench: {} {version}, {}; medians of {runs} runs",
        server.server_name(),
        machine()
    );

    let mut datasets = vec![Dataset::Strings {
        matching: n_match,
        other: n_other,
        size,
    }];
    if n_hash > 0 {
        datasets.push(Dataset::Hashes {
            matching: n_hash,
            fields: hash_fields,
            other: n_other / 10,
        });
    }
    if approaches.is_empty() {
        datasets.clear();
    }
    for dataset in datasets {
        let mut rows = Vec::new();
        for &a in &approaches {
            let mut all = Vec::new();
            for r in 1..=runs {
                eprintln!(
                    "[bench] {} on {} (run {r}/{runs})",
                    a.name(),
                    dataset.describe()
                );
                all.push(measure(&server, dataset, a));
            }
            rows.push((a, median(all)));
        }
        table(&dataset.describe(), &rows);
    }

    let per_prefix = env_usize("ONE_PASS", 250_000);
    if per_prefix > 0 {
        one_pass(&server, per_prefix, runs);
    }

    if !scaling.is_empty() {
        println!(
            "\nScaling: SWEEP.CLEAR of N `{MATCH_PREFIX}:*` among 2N keys ({size}-byte strings)"
        );
        println!("| N matching | wall s | server CPU s | µs per scanned key | other client p99 / max ms |");
        println!("|---|---|---|---|---|");
        for n in scaling {
            let dataset = Dataset::Strings {
                matching: n,
                other: n,
                size,
            };
            eprintln!("[bench] scaling: SWEEP.CLEAR on {}", dataset.describe());
            let m = measure(&server, dataset, Approach::Sweep);
            assert!(m.kept_ok, "scaling run at {n} deleted the wrong keys");
            println!(
                "| {n} | {} | {} | {:.3} | {} / {} |",
                secs(m.wall),
                secs(m.cpu),
                m.wall.as_secs_f64() * 1e6 / (2 * n) as f64,
                ms(m.p99),
                ms(m.max)
            );
        }
    }
}

/// The sweeps of the one-pass comparison: the same keys, named by four `OR` patterns, by one
/// pattern, or by four sweeps one after the other (what it took before `OR`).
#[derive(Clone, Copy, PartialEq)]
enum Pass {
    Or,
    Single,
    Four,
}

impl Pass {
    fn name(self) -> &'static str {
        match self {
            Pass::Or => "`tmp:a:*` OR `tmp:b:*` OR `tmp:c:*` OR `tmp:d:*` (one call)",
            Pass::Single => "`tmp:[a-d]:*` (one call, one pattern)",
            Pass::Four => "`tmp:a:*`, then `tmp:b:*`, `tmp:c:*`, `tmp:d:*` (four calls)",
        }
    }

    fn calls(self) -> Vec<Vec<&'static str>> {
        match self {
            Pass::Or => vec![vec![
                "tmp:a:*", "OR", "tmp:b:*", "OR", "tmp:c:*", "OR", "tmp:d:*",
            ]],
            Pass::Single => vec![vec!["tmp:[a-d]:*"]],
            Pass::Four => ["tmp:a:*", "tmp:b:*", "tmp:c:*", "tmp:d:*"]
                .iter()
                .map(|p| vec![*p])
                .collect(),
        }
    }
}

#[derive(Clone, Copy)]
struct PassRun {
    wall: Duration,
    cpu: Duration,
    scanned: i64,
    deleted: i64,
}

/// SPEC §9's goal: four prefixes of `per_prefix` keys each among eight (`tmp:a` … `tmp:h`), one
/// call with `OR` against one single-pattern sweep deleting the same keys on the same keyspace.
fn one_pass(server: &Server, per_prefix: usize, runs: usize) {
    let total = 8 * per_prefix;
    println!(
        "\nOne pass, several patterns: delete 4 × {per_prefix} keys (`tmp:a:*` … `tmp:d:*`) among \
         {total} (`tmp:a:*` … `tmp:h:*`, 100-byte strings); medians of {runs} runs, alternated"
    );
    let passes = [Pass::Or, Pass::Single, Pass::Four];
    let mut results: Vec<Vec<PassRun>> = vec![Vec::new(); passes.len()];
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(600)))
        .unwrap();
    for r in 1..=runs {
        for (i, pass) in passes.iter().enumerate() {
            redis::cmd("FLUSHALL")
                .arg("SYNC")
                .query::<()>(&mut con)
                .unwrap();
            for p in ["a", "b", "c", "d", "e", "f", "g", "h"] {
                populate(&mut con, per_prefix, &format!("tmp:{p}"), 100);
            }
            eprintln!("[bench] one pass: {} (run {r}/{runs})", pass.name());
            let cpu0 = server_cpu(server.pid);
            let t = Instant::now();
            let (mut scanned, mut deleted) = (0, 0);
            for call in pass.calls() {
                let mut cmd = redis::cmd("SWEEP.CLEAR");
                for a in call {
                    cmd.arg(a);
                }
                let v: redis::Value = cmd.query(&mut con).unwrap();
                let f = common::reply::fields(&v);
                scanned += f["scanned"];
                deleted += f["deleted"];
            }
            let wall = t.elapsed();
            let cpu = server_cpu(server.pid).saturating_sub(cpu0);
            let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
            assert_eq!(deleted, 4 * per_prefix as i64, "{}", pass.name());
            assert_eq!(size, total - 4 * per_prefix, "{}", pass.name());
            results[i].push(PassRun {
                wall,
                cpu,
                scanned,
                deleted,
            });
        }
    }
    let mid = |runs: &[PassRun], f: fn(&PassRun) -> Duration| {
        let mut d: Vec<Duration> = runs.iter().map(f).collect();
        d.sort();
        d[d.len() / 2]
    };
    let single = mid(&results[1], |m| m.wall).as_secs_f64();
    println!("| sweep | wall s | server CPU s | scanned | deleted | wall / one pattern |");
    println!("|---|---|---|---|---|---|");
    for (i, pass) in passes.iter().enumerate() {
        let wall = mid(&results[i], |m| m.wall);
        let cpu = mid(&results[i], |m| m.cpu);
        let PassRun {
            scanned, deleted, ..
        } = results[i][0];
        println!(
            "| {} | {} | {} | {scanned} | {deleted} | {:.2} |",
            pass.name(),
            secs(wall),
            secs(cpu),
            wall.as_secs_f64() / single
        );
    }
}
