//! Replication and persistence while other clients write: a primary with a replica and an AOF,
//! writers changing keys inside and outside the pattern, sweeps running, and SWAPDB, FLUSHDB,
//! CLIENT PAUSE WRITE, BGREWRITEAOF and a failover in the middle. Afterwards the replica's
//! `DEBUG DIGEST` equals the primary's, and so does the primary restarted from its AOF.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::reply::clear;
use common::{wait_until, Server, ServerOptions};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::Value;

const WAIT: Duration = Duration::from_secs(60);

fn digest(con: &mut redis::Connection) -> String {
    redis::cmd("DEBUG").arg("DIGEST").query(con).unwrap()
}

fn info(server: &Server, section: &str, field: &str) -> String {
    server.info_field(section, field).unwrap_or_default()
}

/// Random writes on keys inside (`w:`) and outside (`k:`) the swept pattern.
fn writer(client: redis::Client, seed: u64, stop: Arc<AtomicBool>) -> u64 {
    let mut con = client.get_connection().unwrap();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ops = 0;
    for _ in 0..40 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let mut pipe = redis::pipe();
        for _ in 0..200 {
            let prefix = if rng.gen_bool(0.6) { "w" } else { "k" };
            let key = format!("{prefix}:{}", rng.gen_range(0..3000));
            match rng.gen_range(0..6) {
                0 => pipe.cmd("SET").arg(&key).arg(rng.gen::<u32>()).ignore(),
                1 => pipe.cmd("DEL").arg(&key).ignore(),
                2 => pipe.cmd("INCR").arg(format!("{key}:n")).ignore(),
                3 => pipe
                    .cmd("HSET")
                    .arg(format!("{key}:h"))
                    .arg(rng.gen_range(0..10))
                    .arg(1)
                    .ignore(),
                4 => pipe
                    .cmd("SADD")
                    .arg(format!("{key}:s"))
                    .arg(rng.gen_range(0..100))
                    .ignore(),
                _ => pipe
                    .cmd("SET")
                    .arg(&key)
                    .arg(1)
                    .arg("PX")
                    .arg(rng.gen_range(5..50))
                    .ignore(),
            };
            ops += 1;
        }
        // CLIENT PAUSE may hold these back for a while; never an error.
        pipe.query::<()>(&mut con).unwrap();
    }
    ops
}

/// Removes keys whose TTL has passed (a SCAN reclaims them, and the primary propagates the
/// deletions), so both sides hold the same live keys when digests are compared.
fn reclaim_expired(server: &Server, con: &mut redis::Connection) {
    wait_until("every short TTL to run out", WAIT, || {
        for db in 0..4 {
            redis::cmd("SELECT").arg(db).query::<()>(con).unwrap();
            let mut cursor = 0u64;
            loop {
                let (next, _): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(1000)
                    .query(con)
                    .unwrap();
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
        }
        redis::cmd("SELECT").arg(0).query::<()>(con).unwrap();
        let keyspace: String = redis::cmd("INFO").arg("keyspace").query(con).unwrap();
        !keyspace
            .lines()
            .any(|l| l.contains("expires=") && !l.contains("expires=0"))
    });
    let _ = server;
}

fn ok_or_aborted(r: redis::RedisResult<std::collections::BTreeMap<String, i64>>) {
    if let Err(e) = r {
        assert!(e.to_string().contains("aborted"), "{e}");
    }
}

#[test]
fn replica_and_aof_match_the_primary_after_sweeps_under_concurrent_writes() {
    let mut primary = Server::start_with(ServerOptions {
        extra_args: vec!["--appendonly".into(), "yes".into()],
        ..Default::default()
    });
    let replica = Server::start_with(ServerOptions {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
        ..Default::default()
    });
    wait_until("the replica to sync", WAIT, || {
        info(&replica, "replication", "master_link_status") == "up"
    });
    let mut con = primary.conn();
    // Expired keys stay until something reaches them: sweeps then meet expired keys.
    redis::cmd("DEBUG")
        .arg("SET-ACTIVE-EXPIRE")
        .arg(0)
        .query::<()>(&mut con)
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..3000 {
        pipe.cmd("SET").arg(format!("w:{i}")).arg(i).ignore();
        pipe.cmd("SET").arg(format!("k:{i}")).arg(i).ignore();
    }
    pipe.cmd("SELECT").arg(3).ignore();
    for i in 0..20_000 {
        pipe.cmd("SET").arg(format!("z:{i}")).arg(i).ignore();
    }
    pipe.cmd("SELECT").arg(0).ignore();
    pipe.query::<()>(&mut con).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..2)
        .map(|n| {
            let client = primary.client();
            let stop = stop.clone();
            thread::spawn(move || writer(client, 7 + n, stop))
        })
        .collect();

    // An ASYNC sweep in db 3 that FLUSHDB will end.
    redis::cmd("SELECT").arg(3).query::<()>(&mut con).unwrap();
    let z: i64 = redis::cmd("SWEEP.CLEAR")
        .arg("z:*")
        .arg("BATCH")
        .arg(1)
        .arg("ASYNC")
        .query(&mut con)
        .unwrap();
    redis::cmd("SELECT").arg(0).query::<()>(&mut con).unwrap();

    for round in 0..6 {
        let client = primary.client();
        let sweeper = thread::spawn(move || {
            let mut c = client.get_connection().unwrap();
            clear(&mut c, &[b"w:*", b"BATCH", b"20"])
        });
        match round {
            // First, while the sweep of db 3 (20,000 slices of one key) is surely running.
            0 => {
                redis::cmd("SELECT").arg(3).query::<()>(&mut con).unwrap();
                redis::cmd("FLUSHDB").query::<()>(&mut con).unwrap();
                redis::cmd("SELECT").arg(0).query::<()>(&mut con).unwrap();
            }
            1 => redis::cmd("CLIENT")
                .arg("PAUSE")
                .arg(50)
                .arg("WRITE")
                .query::<()>(&mut con)
                .unwrap(),
            2 => {
                redis::cmd("SWAPDB")
                    .arg(0)
                    .arg(1)
                    .query::<()>(&mut con)
                    .unwrap();
                redis::cmd("SWAPDB")
                    .arg(0)
                    .arg(1)
                    .query::<()>(&mut con)
                    .unwrap();
            }
            3 => redis::cmd("BGREWRITEAOF").query::<()>(&mut con).unwrap(),
            _ => {}
        }
        ok_or_aborted(sweeper.join().unwrap());
    }
    stop.store(true, Ordering::Relaxed);
    let ops: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(ops > 0);
    let z_state: Vec<Value> = redis::cmd("SWEEP.STATUS").arg(z).query(&mut con).unwrap();
    assert!(
        format!("{z_state:?}").contains("aborted"),
        "FLUSHDB did not end the sweep of db 3: {z_state:?}"
    );
    // The writers are done: one more sweep leaves no `w:` key.
    clear(&mut con, &[b"w:*"]).unwrap();
    let left: Vec<String> = redis::cmd("KEYS").arg("w:*").query(&mut con).unwrap();
    assert!(left.is_empty(), "{left:?}");

    reclaim_expired(&primary, &mut con);
    let acked: i64 = redis::cmd("WAIT")
        .arg(1)
        .arg(10_000)
        .query(&mut con)
        .unwrap();
    assert_eq!(acked, 1);
    let expected = digest(&mut con);
    let mut r = replica.conn();
    wait_until("the replica's digest to match the primary's", WAIT, || {
        digest(&mut r) == expected
    });

    wait_until("the AOF rewrite to end", WAIT, || {
        info(&primary, "persistence", "aof_rewrite_in_progress") == "0"
    });
    drop(con);
    primary.restart();
    let mut con = primary.conn();
    assert_eq!(
        digest(&mut con),
        expected,
        "the AOF does not replay to the same data"
    );
}

#[test]
fn a_failover_mid_sweep_stops_it_and_the_old_primary_writes_nothing() {
    let primary = Server::start();
    let replica = Server::start_with(ServerOptions {
        extra_args: vec![
            "--replicaof".into(),
            "127.0.0.1".into(),
            primary.port.to_string(),
        ],
        ..Default::default()
    });
    if primary.server_major_minor() < (6, 2) {
        return; // FAILOVER arrived in 6.2
    }
    wait_until("the replica to sync", WAIT, || {
        info(&replica, "replication", "master_link_status") == "up"
    });
    let mut con = primary.conn();
    let mut pipe = redis::pipe();
    for i in 0..100_000 {
        pipe.cmd("SET").arg(format!("f:{i}")).arg(i).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    let id: i64 = redis::cmd("SWEEP.CLEAR")
        .arg("f:*")
        .arg("BATCH")
        .arg(1)
        .arg("ASYNC")
        .query(&mut con)
        .unwrap();
    redis::cmd("FAILOVER").query::<()>(&mut con).unwrap();
    wait_until("the old primary to become a replica", WAIT, || {
        info(&primary, "replication", "role") == "slave"
            && info(&primary, "replication", "master_link_status") == "up"
    });
    let state: Vec<Value> = redis::cmd("SWEEP.STATUS").arg(id).query(&mut con).unwrap();
    assert!(format!("{state:?}").contains("aborted"), "{state:?}");
    let mut r = replica.conn();
    let mut p = primary.conn();
    wait_until("both sides to hold the same data", WAIT, || {
        digest(&mut p) == digest(&mut r)
    });
    // The new primary can sweep; the old one, now a replica, refuses.
    let err = redis::cmd("SWEEP.CLEAR")
        .arg("f:*")
        .query::<Value>(&mut p)
        .unwrap_err();
    assert_eq!(err.code(), Some("READONLY"), "{err:?}");
    let left: i64 = redis::cmd("DBSIZE").query(&mut r).unwrap();
    let done = clear(&mut r, &[b"f:*"]).unwrap();
    assert_eq!(done["deleted"], left);
}
