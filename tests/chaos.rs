//! Chaos during sweeps (SPEC §2 "Interruptions"): DEBUG RELOAD, CLIENT KILL of the caller,
//! MODULE UNLOAD, SHUTDOWN, keys expiring on their own, many overlapping sweeps at once. No
//! crash, no key outside a pattern lost, counts that add up.

mod common;

use common::ops::{blocked_clients, dbsize, populate, start_async};
use std::collections::BTreeSet;
use std::thread;
use std::time::Duration;

use common::reply::clear;
use common::{wait_until, Server, ServerOptions};
use redis::Value;

const WAIT: Duration = Duration::from_secs(30);

fn count(con: &mut redis::Connection, pattern: &str) -> usize {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(pattern).query(con).unwrap();
    keys.len()
}

fn ping(con: &mut redis::Connection) {
    let pong: String = redis::cmd("PING").query(con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn debug_reload_mid_sweep_ends_it_and_loses_nothing_else() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "d");
    populate(&mut con, 1_000, "keep");
    let client = server.client();
    let sweeper = thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        clear(&mut c, &[b"d:*", b"BATCH", b"1"])
    });
    wait_until("the sweep to delete some keys", WAIT, || {
        dbsize(&mut con) < 201_000
    });
    redis::cmd("DEBUG")
        .arg("RELOAD")
        .query::<()>(&mut con)
        .unwrap();
    let err = sweeper.join().unwrap().unwrap_err();
    assert!(err.to_string().contains("flushed"), "{err}");
    ping(&mut con);
    assert_eq!(count(&mut con, "keep:*"), 1_000);
    let left = count(&mut con, "d:*");
    assert!(left > 0 && left < 200_000, "{left}");
    // Nothing goes on deleting after the reload.
    assert_eq!(count(&mut con, "d:*"), left);
}

#[test]
fn client_kill_of_the_caller_cancels_its_sweep() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "k");
    let client = server.client();
    let sweeper = thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        clear(&mut c, &[b"k:*", b"BATCH", b"1"])
    });
    wait_until("the sweep to start", WAIT, || blocked_clients(&server) == 1);
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut con).unwrap();
    let id = list
        .lines()
        .find(|l| l.contains("cmd=sweep.clear"))
        .and_then(|l| l.split_whitespace().find_map(|f| f.strip_prefix("id=")))
        .unwrap_or_else(|| panic!("{list}"))
        .to_string();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("ID")
        .arg(&id)
        .query::<()>(&mut con)
        .unwrap();
    assert!(sweeper.join().unwrap().is_err());
    wait_until("the sweep to be cancelled", WAIT, || {
        server.log().contains("of 'k:*' on db 0 cancelled")
    });
    let left = dbsize(&mut con);
    assert!(left > 0);
    ping(&mut con);
    assert_eq!(dbsize(&mut con), left);
}

#[test]
fn module_unload_is_refused_while_sweeps_run_and_allowed_after() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 200_000, "u");
    let id = start_async(&mut con, &["u:*", "BATCH", "1"]);
    let err = redis::cmd("MODULE")
        .arg("UNLOAD")
        .arg("sweep")
        .query::<Value>(&mut con)
        .unwrap_err();
    assert!(!err.to_string().is_empty());
    assert!(
        server.log().contains("refuses to unload"),
        "{}",
        server.log()
    );

    // A blocking sweep: the server itself refuses (the module has a blocked client).
    let client = server.client();
    let sweeper = thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        clear(&mut c, &[b"u:*", b"BATCH", b"1", b"DRYRUN"])
    });
    wait_until("the sweep to start", WAIT, || blocked_clients(&server) == 1);
    assert!(redis::cmd("MODULE")
        .arg("UNLOAD")
        .arg("sweep")
        .query::<Value>(&mut con)
        .is_err());
    // Cancel both (the blocking one is the newest job).
    redis::cmd("SWEEP.CANCEL")
        .arg(id)
        .query::<Value>(&mut con)
        .unwrap();
    redis::cmd("SWEEP.CANCEL")
        .arg(id + 1)
        .query::<Value>(&mut con)
        .unwrap();
    sweeper.join().unwrap().unwrap();

    redis::cmd("MODULE")
        .arg("UNLOAD")
        .arg("sweep")
        .query::<()>(&mut con)
        .unwrap();
    let err = redis::cmd("SWEEP.CLEAR")
        .arg("*")
        .query::<Value>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string().to_lowercase().contains("unknown command"),
        "{err}"
    );
    ping(&mut con);

    // And it loads again and works.
    redis::cmd("MODULE")
        .arg("LOAD")
        .arg(common::module_path().to_str().unwrap())
        .query::<()>(&mut con)
        .unwrap();
    let left = dbsize(&mut con);
    let r = clear(&mut con, &[b"u:*"]).unwrap();
    assert_eq!(r["deleted"], left);
    assert_eq!(dbsize(&mut con), 0);
}

#[test]
fn shutdown_mid_sweep_exits_cleanly_and_restarts_with_its_data() {
    let mut server = Server::start_with(ServerOptions {
        extra_args: vec!["--appendonly".into(), "yes".into()],
        ..Default::default()
    });
    let mut con = server.conn();
    // Real writes, so the AOF has them (DEBUG POPULATE is not logged).
    let mut pipe = redis::pipe();
    for i in 0..60_000 {
        pipe.cmd("SET").arg(format!("s:{i}")).arg(i).ignore();
        if i < 2_000 {
            pipe.cmd("SET").arg(format!("keep:{i}")).arg(i).ignore();
        }
    }
    pipe.query::<()>(&mut con).unwrap();
    start_async(&mut con, &["s:*", "BATCH", "1"]);
    let client = server.client();
    let sweeper = thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        clear(&mut c, &[b"s:*", b"BATCH", b"1"])
    });
    wait_until("the blocking sweep to start", WAIT, || {
        blocked_clients(&server) == 1
    });
    drop(con);
    server.restart();
    // The blocked client saw its connection close; that is all.
    let _ = sweeper.join().unwrap();
    let mut con = server.conn();
    assert_eq!(count(&mut con, "keep:*"), 2_000);
    let left = count(&mut con, "s:*");
    assert!(
        left < 60_000,
        "the sweeps deleted nothing before the shutdown"
    );
    assert_eq!(dbsize(&mut con), 2_000 + left as i64);
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn keys_expiring_during_a_sweep_are_never_counted_twice() {
    let server = Server::start();
    let mut con = server.conn();
    redis::cmd("CONFIG")
        .arg("SET")
        .arg("hz")
        .arg(100)
        .query::<()>(&mut con)
        .unwrap();
    let mut pipe = redis::pipe();
    for i in 0..20_000u64 {
        // Half expire within 50 ms, during the sweep; half live on.
        let key = format!("e:{i}");
        if i % 2 == 0 {
            pipe.cmd("SET")
                .arg(&key)
                .arg(i)
                .arg("PX")
                .arg(1 + i % 50)
                .ignore();
        } else {
            pipe.cmd("SET").arg(&key).arg(i).ignore();
        }
        pipe.cmd("SET").arg(format!("other:{i}")).arg(i).ignore();
    }
    pipe.query::<()>(&mut con).unwrap();
    let expired_before: i64 = server
        .info_field("stats", "expired_keys")
        .unwrap()
        .parse()
        .unwrap();
    let r = clear(&mut con, &[b"e:*", b"BATCH", b"20"]).unwrap();
    let expired_after: i64 = server
        .info_field("stats", "expired_keys")
        .unwrap()
        .parse()
        .unwrap();
    // Every live key was deleted by the sweep; each expiring key went exactly one way.
    assert!(r["deleted"] >= 10_000, "{r:?}");
    assert!(r["deleted"] + r["expired"] <= 20_000, "{r:?}");
    assert!(r["expired"] <= expired_after - expired_before, "{r:?}");
    assert_eq!(r["matched"], r["deleted"] + r["expired"] + r["denied"]);
    assert_eq!(count(&mut con, "e:*"), 0);
    assert_eq!(count(&mut con, "other:*"), 20_000);
}

#[test]
fn many_overlapping_sweeps_delete_each_key_once_and_nothing_else() {
    let server = Server::start();
    let mut con = server.conn();
    populate(&mut con, 50_000, "a");
    populate(&mut con, 50_000, "b");
    let patterns = ["a:*", "a:1*", "*:1*", "a:[0-4]*", "*:2?", "a:*9"];
    let mut union = BTreeSet::new();
    for p in patterns {
        let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg(p).query(&mut con).unwrap();
        union.extend(keys);
    }
    let total = dbsize(&mut con);
    let mut handles = Vec::new();
    for (i, p) in patterns.iter().enumerate() {
        let client = server.client();
        let p = p.to_string();
        handles.push(thread::spawn(move || {
            let mut c = client.get_connection().unwrap();
            if i % 2 == 0 {
                clear(&mut c, &[p.as_bytes(), b"BATCH", b"64"]).unwrap()["deleted"]
            } else {
                let id = start_async(&mut c, &[&p, "BATCH", "64"]);
                let mut deleted = -1;
                wait_until("the async sweep to end", WAIT, || {
                    let v: Vec<Value> = redis::cmd("SWEEP.STATUS").arg(id).query(&mut c).unwrap();
                    let get = |name: &[u8]| {
                        v.chunks(2)
                            .find(|f| matches!(&f[0], Value::BulkString(k) if k == name))
                            .map(|f| f[1].clone())
                    };
                    if get(b"state") == Some(Value::BulkString(b"done".to_vec())) {
                        if let Some(Value::Int(d)) = get(b"deleted") {
                            deleted = d;
                        }
                        true
                    } else {
                        false
                    }
                });
                deleted
            }
        }));
    }
    let deleted: i64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(
        deleted,
        union.len() as i64,
        "a key was deleted twice or missed"
    );
    assert_eq!(dbsize(&mut con), total - union.len() as i64);
    for p in patterns {
        assert_eq!(count(&mut con, p), 0, "{p}");
    }
}
