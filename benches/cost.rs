//! `make bench`'s "cost per key" table: the server CPU a sweep costs next to what the server's own
//! commands cost for the same keys, on a fresh server per measurement (so one measurement's
//! leftovers, a resized table or memory to give back, never land on the next one).
//!
//! - sparse: `COST_MATCH` (1000) `image_proxy:*` keys among `COST_OTHER` (2000000) others;
//!   `SWEEP.CLEAR image_proxy:* DRYRUN` against a client's `SCAN cursor MATCH image_proxy:* COUNT
//!   1000` loop (both visit every key and delete nothing);
//! - dense: `COST_DENSE` (1000000) `image_proxy:*` keys among as many others; `SWEEP.CLEAR
//!   image_proxy:*` against `KEYS image_proxy:*` then `DEL` of 1000 names per call, pipelined.
//! - where the dense gap comes from: the walk. `KEYS image_proxy:*` over the sparse keyspace
//!   (sparse-keys) against the `SCAN MATCH` loop over it (sparse-scan) is what walking the table
//!   in `SCAN`'s order costs over walking it in `KEYS`'s, with almost nothing to reply or
//!   delete; and a client's `SCAN MATCH … COUNT 1000` + `UNLINK` loop over the dense keyspace
//!   (dense-scan, the recipe the sweep replaces) is the server's own cost of the non-blocking way.
//!
//! Server CPU is user + system time from /proc/PID/stat (all the server's threads), taken around
//! the operation only. The four measurements run interleaved, `COST_RUNS` (3) rounds; medians.
//! `REDIS_SERVER` picks the server. `COST_ONLY` (a comma list of sparse-sweep, sparse-scan,
//! sparse-keys, dense-sweep, dense-keys, dense-scan) runs a subset.

#[path = "../tests/common/mod.rs"]
mod common;
mod util;

use std::time::{Duration, Instant};

use common::{Server, ServerOptions};
use util::{env_usize, server_cpu};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    SparseSweep,
    SparseScan,
    SparseKeys,
    DenseSweep,
    DenseKeys,
    DenseScan,
}

const OPS: [Op; 6] = [
    Op::SparseSweep,
    Op::SparseScan,
    Op::SparseKeys,
    Op::DenseSweep,
    Op::DenseKeys,
    Op::DenseScan,
];

impl Op {
    fn key(self) -> &'static str {
        match self {
            Op::SparseSweep => "sparse-sweep",
            Op::SparseScan => "sparse-scan",
            Op::DenseSweep => "dense-sweep",
            Op::DenseKeys => "dense-keys",
            Op::SparseKeys => "sparse-keys",
            Op::DenseScan => "dense-scan",
        }
    }
}

const PATTERN: &str = "image_proxy:*";

fn populate(con: &mut redis::Connection, n: usize, prefix: &str) {
    redis::cmd("DEBUG")
        .arg("POPULATE")
        .arg(n)
        .arg(prefix)
        .arg(16)
        .query::<()>(con)
        .unwrap();
}

fn fields(v: &redis::Value) -> std::collections::BTreeMap<String, i64> {
    common::reply::fields(v)
}

/// A client's `SCAN cursor MATCH PATTERN COUNT 1000` loop over the whole keyspace; with
/// `unlink`, each call's names go in one `UNLINK`. The keys it found (or unlinked).
fn scan_loop(con: &mut redis::Connection, unlink: bool) -> usize {
    let mut cursor = 0u64;
    let mut n = 0;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(PATTERN)
            .arg("COUNT")
            .arg(1000)
            .query(con)
            .unwrap();
        n += match (unlink, keys.is_empty()) {
            (true, false) => redis::cmd("UNLINK").arg(&keys).query::<usize>(con).unwrap(),
            _ => keys.len(),
        };
        cursor = next;
        if cursor == 0 {
            return n;
        }
    }
}

/// One measurement on a fresh server: (server CPU, wall time).
fn measure(op: Op, n_match: usize, n_other: usize, n_dense: usize) -> (Duration, Duration) {
    let server = Server::start_with(ServerOptions::default());
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(900)))
        .unwrap();
    let (matching, other) = match op {
        Op::SparseSweep | Op::SparseScan | Op::SparseKeys => (n_match, n_other),
        Op::DenseSweep | Op::DenseKeys | Op::DenseScan => (n_dense, n_dense),
    };
    populate(&mut con, other, "session");
    populate(&mut con, matching, "image_proxy");
    let cpu0 = server_cpu(server.pid);
    let t = Instant::now();
    let found = match op {
        Op::SparseSweep => {
            let v: redis::Value = redis::cmd("SWEEP.CLEAR")
                .arg(PATTERN)
                .arg("DRYRUN")
                .query(&mut con)
                .unwrap();
            let f = fields(&v);
            assert!(f["scanned"] as usize >= matching + other, "{f:?}");
            f["matched"] as usize
        }
        Op::SparseScan => scan_loop(&mut con, false),
        Op::SparseKeys => {
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(PATTERN).query(&mut con).unwrap();
            keys.len()
        }
        Op::DenseScan => scan_loop(&mut con, true),
        Op::DenseSweep => {
            let v: redis::Value = redis::cmd("SWEEP.CLEAR")
                .arg(PATTERN)
                .query(&mut con)
                .unwrap();
            fields(&v)["deleted"] as usize
        }
        Op::DenseKeys => {
            let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(PATTERN).query(&mut con).unwrap();
            let mut pipe = redis::pipe();
            for chunk in keys.chunks(1000) {
                pipe.cmd("DEL").arg(chunk);
            }
            let counts: Vec<usize> = pipe.query(&mut con).unwrap();
            counts.iter().sum()
        }
    };
    let wall = t.elapsed();
    let cpu = server_cpu(server.pid).saturating_sub(cpu0);
    assert_eq!(found, matching, "{}: wrong number of keys", op.key());
    (cpu, wall)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn main() {
    let runs = env_usize("COST_RUNS", 3).max(1);
    let n_match = env_usize("COST_MATCH", 1000);
    let n_other = env_usize("COST_OTHER", 2_000_000);
    let n_dense = env_usize("COST_DENSE", 1_000_000);
    let only = std::env::var("COST_ONLY").unwrap_or_default();
    let ops: Vec<Op> = OPS
        .into_iter()
        .filter(|op| only.is_empty() || only.split(',').any(|o| o.trim() == op.key()))
        .collect();
    let probe = Server::start_with(ServerOptions::default());
    // Valkey reports the Redis API level as redis_version, its own as valkey_version.
    let version = probe
        .info_field("server", "valkey_version")
        .or_else(|| probe.info_field("server", "redis_version"))
        .unwrap_or_default();
    let name = format!("{} {version}", probe.server_name());
    let mechanism = probe.log().lines().rev().find_map(|l| {
        l.split_once("visit:")
            .map(|(_, rest)| format!("visit:{}", rest.trim()))
    });
    drop(probe);
    let mut cpu: Vec<Vec<Duration>> = vec![Vec::new(); ops.len()];
    for round in 1..=runs {
        for (i, &op) in ops.iter().enumerate() {
            eprintln!("[cost] {name}: {} (round {round}/{runs})", op.key());
            let (c, w) = measure(op, n_match, n_other, n_dense);
            eprintln!(
                "[cost]   server CPU {:.3} s, wall {:.3} s",
                c.as_secs_f64(),
                w.as_secs_f64()
            );
            if let Some(all) = cpu.get_mut(i) {
                all.push(c);
            }
        }
    }
    let med: Vec<Option<Duration>> = OPS
        .iter()
        .map(|op| {
            ops.iter()
                .position(|o| o == op)
                .and_then(|i| cpu.get(i))
                .map(|v| median(v.clone()))
        })
        .collect();
    let s = |d: Option<Duration>| d.map_or("-".into(), |d| format!("{:.3}", d.as_secs_f64()));
    let ratio = |a: Option<Duration>, b: Option<Duration>| match (a, b) {
        (Some(a), Some(b)) if !b.is_zero() => format!("{:.2}", a.as_secs_f64() / b.as_secs_f64()),
        _ => "-".into(),
    };
    let m = |i: usize| med.get(i).copied().flatten();
    println!(
        "\nCost per key, server CPU s (medians of {runs} interleaved rounds, fresh server each): \
         sparse = {n_match} matches among {} keys, dense = {n_dense} of {}",
        n_match + n_other,
        2 * n_dense
    );
    println!("| server | mechanism | sparse: sweep DRYRUN | SCAN MATCH loop | ratio | dense: sweep | KEYS + DEL | ratio |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} | {} |",
        mechanism.unwrap_or_else(|| "-".into()),
        s(m(0)),
        s(m(1)),
        ratio(m(0), m(1)),
        s(m(3)),
        s(m(4)),
        ratio(m(3), m(4))
    );
    // What no sweep that walks in SCAN's order can go under: KEYS + DEL plus what SCAN's walk
    // costs over KEYS's on the same table.
    let floor = match (m(1), m(2), m(4)) {
        (Some(scan), Some(keys), Some(dense)) if !dense.is_zero() => format!(
            "{:.2}",
            (dense.as_secs_f64() + scan.as_secs_f64() - keys.as_secs_f64()) / dense.as_secs_f64()
        ),
        _ => "-".into(),
    };
    println!("\nWhere the dense gap comes from, server CPU s (same medians):");
    println!("| server | walk: SCAN MATCH loop | KEYS | ratio | dense: sweep | client SCAN MATCH + UNLINK loop | ratio | floor of a SCAN-order walk / KEYS + DEL |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {name} | {} | {} | {} | {} | {} | {} | {floor} |",
        s(m(1)),
        s(m(2)),
        ratio(m(1), m(2)),
        s(m(3)),
        s(m(5)),
        ratio(m(3), m(5)),
    );
}
