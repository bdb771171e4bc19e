//! `make bench` (cluster table, SPEC §6): a cluster of 3 primaries (no replicas), N_MATCH
//! matching keys among N_MATCH + N_OTHER, loaded through their owners. On a fresh copy of the
//! matching keys each time, the wall time of:
//! - the client-side recipe as cluster users write it: on each primary in turn, `SCAN … MATCH
//!   COUNT 1000` and the batch's keys unlinked in one pipeline (one `UNLINK` per key: a multi-key
//!   `UNLINK` must stay within one slot);
//! - `SWEEP.CLEAR … LOCAL` sent to each primary in turn (the slowest of the three is what a
//!   parallel fan-out can at best match);
//! - `SWEEP.CLEAR` sent to one primary (the fan-out);
//! - and, among all those keys, the slot-pinned sweep of one tenant's N_TENANT keys
//!   (`{tenant:42}:*`) against a full-cluster sweep.
//!
//! Each figure is the median of RUNS runs. Environment: N_MATCH (1000000), N_OTHER (1000000),
//! N_TENANT (5000), RUNS (3), REDIS_SERVER.

#[path = "../tests/common/mod.rs"]
mod common;
mod util;

use std::time::{Duration, Instant};

use common::cluster::{Cluster, ClusterOptions};
use redis::Value;
use util::env_usize;

fn keys(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}{i}").into_bytes())
        .collect()
}

fn load(c: &Cluster, prefix: &str, n: usize) {
    // In chunks, so the names of a million keys are not all held at once.
    let chunk = 100_000;
    let mut start = 0;
    while start < n {
        let end = (start + chunk).min(n);
        let batch: Vec<Vec<u8>> = (start..end)
            .map(|i| format!("{prefix}{i}").into_bytes())
            .collect();
        c.load(&batch);
        start = end;
    }
}

fn sweep(con: &mut redis::Connection, args: &[&str]) -> i64 {
    let mut cmd = redis::cmd("SWEEP.CLEAR");
    for a in args {
        cmd.arg(*a);
    }
    let v: Value = cmd.query(con).unwrap();
    let Value::Array(items) = v else {
        panic!("{v:?}")
    };
    items
        .chunks(2)
        .find_map(|p| match (&p[0], &p[1]) {
            (Value::BulkString(k), Value::Int(n)) if k == b"deleted" => Some(*n),
            _ => None,
        })
        .unwrap_or(0)
}

/// The client-side recipe on one primary: SCAN … MATCH COUNT 1000, then the batch's UNLINKs
/// in one pipeline.
fn client_recipe(con: &mut redis::Connection, pattern: &str) -> i64 {
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, batch): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(1000)
            .query(con)
            .unwrap();
        if !batch.is_empty() {
            // One UNLINK per key, pipelined: a multi-key UNLINK must stay within one slot.
            let mut pipe = redis::pipe();
            for key in &batch {
                pipe.cmd("UNLINK").arg(key);
            }
            let n: Vec<i64> = pipe.query(con).unwrap();
            deleted += n.iter().sum::<i64>();
        }
        cursor = next;
        if cursor == 0 {
            return deleted;
        }
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn main() {
    let n_match = env_usize("N_MATCH", 1_000_000);
    let n_other = env_usize("N_OTHER", 1_000_000);
    let n_tenant = env_usize("N_TENANT", 5_000);
    let runs = env_usize("RUNS", 3).max(1);
    let c = Cluster::start(ClusterOptions {
        replicas_per_primary: 0,
        ..ClusterOptions::default()
    });
    let primaries: Vec<&common::Server> = c.primaries();
    eprintln!("loading {n_other} other keys");
    load(&c, "session:", n_other);
    let pattern = "image_proxy:*";

    let (mut client, mut local_sum, mut local_max, mut fanout) = (vec![], vec![], vec![], vec![]);
    let mut parallel = vec![];
    let mut local_each: Vec<Vec<Duration>> = vec![Vec::new(); primaries.len()];
    for run in 0..runs {
        for approach in ["client", "local", "parallel", "fanout"] {
            eprintln!("run {run}: loading {n_match} matching keys, then {approach}");
            load(&c, "image_proxy:", n_match);
            let deleted = match approach {
                "client" => {
                    let t = Instant::now();
                    let mut d = 0;
                    for p in &primaries {
                        d += client_recipe(&mut p.conn(), pattern);
                    }
                    client.push(t.elapsed());
                    d
                }
                "local" => {
                    let mut d = 0;
                    let mut sum = Duration::ZERO;
                    let mut max = Duration::ZERO;
                    for (i, p) in primaries.iter().enumerate() {
                        let t = Instant::now();
                        d += sweep(&mut p.conn(), &[pattern, "LOCAL"]);
                        let e = t.elapsed();
                        local_each[i].push(e);
                        sum += e;
                        max = max.max(e);
                    }
                    local_sum.push(sum);
                    local_max.push(max);
                    d
                }
                "parallel" => {
                    // LOCAL on the three primaries at once, from three clients: what the
                    // machine gives three busy servers, without the cluster protocol.
                    let ports: Vec<u16> = primaries.iter().map(|p| p.port).collect();
                    let t = Instant::now();
                    let threads: Vec<_> = ports
                        .into_iter()
                        .map(|port| {
                            std::thread::spawn(move || {
                                let mut con = common::cluster::conn_to(port);
                                sweep(&mut con, &[pattern, "LOCAL"])
                            })
                        })
                        .collect();
                    let d = threads.into_iter().map(|h| h.join().unwrap()).sum();
                    parallel.push(t.elapsed());
                    d
                }
                _ => {
                    let t = Instant::now();
                    let d = sweep(&mut primaries[0].conn(), &[pattern]);
                    fanout.push(t.elapsed());
                    d
                }
            };
            assert_eq!(
                deleted as usize, n_match,
                "{approach} deleted every matching key"
            );
            assert_eq!(c.dbsize() as usize, n_other, "{approach} left the others");
        }
    }

    // The slot-pinned sweep of one tenant among everything, against a full-cluster sweep.
    let (mut pinned, mut full) = (vec![], vec![]);
    load(&c, "image_proxy:", n_match);
    for _ in 0..runs {
        c.load(&keys("{tenant:42}:", n_tenant));
        let stranger = primaries[1];
        let t = Instant::now();
        let d = sweep(&mut stranger.conn(), &["{tenant:42}:*"]);
        pinned.push(t.elapsed());
        assert_eq!(d as usize, n_tenant);
        c.load(&keys("{tenant:42}:", n_tenant));
        let t = Instant::now();
        let d = sweep(&mut stranger.conn(), &["*tenant:42*"]);
        full.push(t.elapsed());
        assert_eq!(d as usize, n_tenant);
    }

    let fan = median(fanout);
    let max = median(local_max);
    println!();
    println!(
        "Cluster: 3 primaries, {n_match} matching keys among {} (medians of {runs}; {} {:?})",
        n_match + n_other,
        common::server_binary(),
        common::binary_version()
    );
    println!("| approach | wall |");
    println!("|---|---|");
    println!(
        "| client recipe: SCAN MATCH COUNT 1000 + pipelined UNLINKs, each primary in turn | {} |",
        ms(median(client))
    );
    println!(
        "| `SWEEP.CLEAR … LOCAL` on each primary in turn (sum) | {} |",
        ms(median(local_sum))
    );
    for (i, each) in local_each.into_iter().enumerate() {
        println!(
            "| `SWEEP.CLEAR … LOCAL` on primary {} alone | {} |",
            i + 1,
            ms(median(each))
        );
    }
    println!(
        "| `SWEEP.CLEAR … LOCAL` on the three primaries at once (three clients) | {} |",
        ms(median(parallel))
    );
    println!("| `SWEEP.CLEAR` from one node (fan-out) | {} |", ms(fan));
    println!(
        "| fan-out / slowest single primary's LOCAL | {:.2}x |",
        fan.as_secs_f64() / max.as_secs_f64()
    );
    let (p, f) = (median(pinned), median(full));
    println!(
        "| `{{tenant:42}}:*` ({n_tenant} keys, slot-pinned) | {} |",
        ms(p)
    );
    println!(
        "| `*tenant:42*` (same keys, full-cluster sweep) | {} |",
        ms(f)
    );
    println!(
        "| full / slot-pinned | {:.0}x |",
        f.as_secs_f64() / p.as_secs_f64().max(1e-9)
    );
}
